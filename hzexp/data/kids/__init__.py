"""KiDS inputs -> a dataset directory: DR4 tiles with KiDS-Bright photometry and GAMA
spectroscopy (`ingest`), or the official Hybrid-z FITS table (`official`).

`ingest` runs the tile path from `catalogue` (columns, KiDS-Bright selection, magnitudes),
`matching` (GAMA spectroscopic redshifts) and `tiles` (tiles, WCS, assignment, cutouts);
`ids` holds the KiDS ID rule both paths share (the 63-bit `object_id` of a KiDS ID string,
and the `kids_ids.parquet` side table that maps it back).
"""

from hzexp.data.kids.ids import KIDS_ID_FILE, OBJECT_ID_RULE, kids_object_ids
from hzexp.data.kids.ingest import IngestReport, ingest
from hzexp.data.kids.official import read_official_table

__all__ = ["KIDS_ID_FILE", "OBJECT_ID_RULE", "IngestReport", "ingest", "kids_object_ids",
           "read_official_table"]
