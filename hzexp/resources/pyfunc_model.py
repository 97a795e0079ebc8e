"""MLflow models-from-code entry: the pyfunc that serves a logged Hybrid-z model.

MLflow executes this file when it loads the model, instead of unpickling a Python object.
"""

import mlflow

from hzexp.tracking import HybridZPyfunc

mlflow.models.set_model(HybridZPyfunc())
