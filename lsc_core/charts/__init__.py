"""Every chart of the dashboard: pure functions from DataFrames to Altair charts.

One module per area (the page or topic whose data it draws), all re-exported here, so a
page writes `from lsc_core import charts` and `charts.confusion_heatmap(...)`:
- `common`: shared sizes, split colours and dashes, axis and tooltip helpers;
- `training` (Runs: one run's curves, Compare), `evaluate` (confusion heatmaps, per-class
  accuracy), `predict` (top-k probabilities), `search` (parameters against accuracy),
  `study` (the study's comparisons), `data` (class counts), `compare` (run against run:
  per-class differences, reliability diagrams), `recipe` (the
  learning-rate schedule before launch and each epoch's rate under the curves).

Conventions, so charts from different pages look alike and test alike:
- a chart function takes a DataFrame (built in `views` or the area's own module, e.g.
  `lsc_core.evaluate`) and plain options, returns an Altair chart, and reads nothing else;
- tests check `chart.to_dict()`; pages only call `st.altair_chart(chart)`;
- a new chart goes into its area's module and that module's `__all__`; a new area gets a
  module and one import line below.
"""
from .compare import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .evaluate import *  # noqa: F401,F403
from .predict import *  # noqa: F401,F403
from .recipe import *  # noqa: F401,F403
from .search import *  # noqa: F401,F403
from .study import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
