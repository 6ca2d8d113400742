"""Quality calibration: small real models trained offline, compressed (quantization, pruning), measured with
k-fold cross-validation, and their degradation curves fitted (docs/calibration.md, "Quality")."""
