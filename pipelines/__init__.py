"""pipelines: option math, factor definitions and their materialization. Imports data_lake only."""
