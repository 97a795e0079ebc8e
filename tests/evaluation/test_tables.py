"""Table-1 layout and the flat per-subsample metric dict on a hand-built frame."""

import numpy as np
import pandas as pd
import pytest

from hzexp.evaluation.metrics import point_metrics
from hzexp.evaluation.tables import TABLE_COLUMNS, photoz_table, subsample_metrics


@pytest.fixture
def frame():
    # 10 galaxies: 3 masked -> 7 clean; 3 red, 4 blue, 3 untyped (None, NaN, None);
    # one galaxy (r = 20.3) outside the default r edges 14-20.
    return pd.DataFrame(
        {
            "z_spec": [0.05, 0.12, 0.18, 0.22, 0.25, 0.31, 0.33, 0.41, 0.45, 0.52],
            "masked": [False, False, True, False, True, False, False, False, True, False],
            "galaxy_type": [
                "red", "blue", "red", None, "blue", np.nan, "red", "blue", "blue", None,
            ],
            "mag_r_auto": [14.2, 15.7, 16.1, 17.4, 18.9, 19.1, 19.4, 19.6, 19.8, 20.3],
            "object_id": np.arange(10),
        },
        index=np.arange(100, 110),  # a non-default index must not matter
    )


@pytest.fixture
def methods(frame):
    z = frame["z_spec"].to_numpy()
    return {"Hybrid-z": z + 0.01, "kNN baseline": z * 1.1}


def test_columns_and_block_order(frame, methods):
    table = photoz_table(frame, methods)
    assert list(table.columns) == list(TABLE_COLUMNS)
    samples = list(dict.fromkeys(table["sample"]))
    assert samples[:4] == ["all", "clean", "red", "blue"]
    assert samples[4:10] == [
        "r in [14.0, 14.5)", "r in [15.5, 16.0)", "r in [16.0, 16.5)", "r in [17.0, 17.5)",
        "r in [18.5, 19.0)", "r in [19.0, 19.5)",
    ]
    assert samples[10] == "r in [19.5, 20.0)"
    assert all(sample.startswith("z_phot in [") for sample in samples[11:])
    # within every block, one row per method in the order given
    for _, block in table.groupby("sample", sort=False):
        assert list(block["method"]) == list(methods)[: len(block)]


def test_subsample_sizes(frame, methods):
    table = photoz_table(frame, methods).set_index(["sample", "method"])["size"]
    for method in methods:
        assert table[("all", method)] == 10
        assert table[("clean", method)] == 7
        assert table[("red", method)] == 3
        assert table[("blue", method)] == 4
        r_bins = table.loc[table.index.get_level_values("sample").str.startswith("r in")]
        assert r_bins.xs(method, level="method").sum() == 9  # r = 20.3 is beyond the edges
        z_bins = table.loc[table.index.get_level_values("sample").str.startswith("z_phot in")]
        assert z_bins.xs(method, level="method").sum() == 10


def test_empty_bins_are_skipped_not_nan(frame, methods):
    table = photoz_table(frame, methods)
    assert not table.isna().any().any()
    assert (table["size"] > 0).all()
    assert "r in [14.5, 15.0)" not in set(table["sample"])


def test_zphot_bins_use_each_methods_own_zphot(frame, methods):
    table = photoz_table(frame, methods, zphot_edges=[0.0, 0.27, 0.6])
    low = table[table["sample"] == "z_phot in [0.00, 0.27)"].set_index("method")["size"]
    assert low["Hybrid-z"] == 5  # z_spec + 0.01 < 0.27: 0.06 0.13 0.19 0.23 0.26
    assert low["kNN baseline"] == 4  # 1.1 z_spec < 0.27: 0.055 0.132 0.198 0.242


def test_row_values_match_point_metrics(frame, methods):
    table = photoz_table(frame, methods).set_index(["sample", "method"])
    clean = ~frame["masked"].to_numpy()
    z_spec = frame["z_spec"].to_numpy()[clean]
    z_phot = methods["kNN baseline"][clean]
    expected = point_metrics(z_spec, z_phot)
    row = table.loc[("clean", "kNN baseline")]
    assert row["mean_z_spec"] == pytest.approx(z_spec.mean())
    assert row["mean_z_phot"] == pytest.approx(z_phot.mean())
    assert row["mean_dz"] == pytest.approx(expected["bias_mean"])
    assert row["mean_Dz"] == pytest.approx(expected["dz_mean"])
    assert row["sigma_Dz"] == pytest.approx(expected["sigma_dz"])
    assert row["smad_Dz"] == pytest.approx(expected["smad_dz"])
    assert row["outlier_frac"] == pytest.approx(expected["outlier_frac"])


def test_frame_without_red_galaxies_skips_the_red_block(frame, methods):
    frame = frame.assign(galaxy_type=frame["galaxy_type"].replace("red", "blue"))
    table = photoz_table(frame, methods)
    assert "red" not in set(table["sample"])
    assert (table[table["sample"] == "blue"]["size"] == 7).all()


@pytest.mark.parametrize("dtype", [object, "string"])
def test_missing_galaxy_types_are_neither_red_nor_blue(frame, methods, dtype):
    frame = frame.assign(galaxy_type=frame["galaxy_type"].astype(dtype))
    sizes = photoz_table(frame, methods).set_index(["sample", "method"])["size"]
    assert sizes[("red", "Hybrid-z")] == 3
    assert sizes[("blue", "Hybrid-z")] == 4


def test_invalid_inputs(frame, methods):
    with pytest.raises(ValueError, match="missing required column.*masked"):
        photoz_table(frame.drop(columns="masked"), methods)
    with pytest.raises(ValueError, match="length mismatch"):
        photoz_table(frame, {"short": np.zeros(3)})
    with pytest.raises(ValueError, match="non-finite"):
        subsample_metrics(frame, np.full(10, np.nan))


def test_subsample_metrics_keys_and_values(frame, methods):
    z_phot = methods["Hybrid-z"]
    metrics = subsample_metrics(frame, z_phot)
    names = ["bias_mean", "dz_mean", "sigma_dz", "smad_dz", "outlier_frac", "r2", "n_test"]
    samples = ("", "clean_", "red_", "blue_")
    assert set(metrics) == {f"{sample}{name}" for sample in samples for name in names}
    assert (metrics["n_test"], metrics["clean_n_test"], metrics["red_n_test"]) == (10, 7, 3)
    assert metrics["blue_n_test"] == 4
    red = frame["galaxy_type"].eq("red").to_numpy()
    expected_red = point_metrics(frame["z_spec"].to_numpy()[red], z_phot[red])
    assert metrics["red_smad_dz"] == pytest.approx(expected_red["smad_dz"])
    assert metrics["bias_mean"] == pytest.approx(0.01)


def test_subsample_metrics_prefix_and_empty_subsample(frame, methods):
    frame = frame.assign(galaxy_type=None)
    metrics = subsample_metrics(frame, methods["kNN baseline"], prefix="baseline_")
    assert all(key.startswith("baseline_") for key in metrics)
    assert metrics["baseline_red_n_test"] == 0
    assert metrics["baseline_blue_n_test"] == 0
    assert not any(key.startswith(("baseline_red_s", "baseline_blue_s")) for key in metrics)
    assert "baseline_clean_smad_dz" in metrics
    assert not any(np.isnan(value) for value in metrics.values())
