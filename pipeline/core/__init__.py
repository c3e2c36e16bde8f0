"""The core: session model, parameter spec, stage runner, dataset and provenance. No science."""
