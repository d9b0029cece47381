"""The parts of ``bgeft pipeline``: the pipeline file (``spec``), the stage graph and its bookkeeping
(``graph``, ``state``), the stage bodies (``text_stages``, ``model_stages``, ``eval_stage``) and the
report (``report``). The command itself lives in ``bgeft.pipeline``."""
