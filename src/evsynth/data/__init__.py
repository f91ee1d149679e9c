"""Layer 1, data: the study table (schema, loading, validation: `studies`), the exclusion-rule grammar
over its columns (`rules`) and the fixed vocabulary of measures, models and engines (`vocabulary`,
importable without pandas so `--help` stays fast). Imports nothing else of evsynth.
"""
