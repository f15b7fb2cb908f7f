"""Streaming anomaly detection (documented fully once the API settles)."""

from vigil.analytics.anomaly.detector import (
    BatchResult,
    DetectionResult,
    DetectorConfig,
    UnivariateDetector,
)

__all__ = ["BatchResult", "DetectionResult", "DetectorConfig", "UnivariateDetector"]
