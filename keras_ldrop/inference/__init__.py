"""A trained classifier used: evaluate it on new domains, predict, export it.

- `evaluate`: accuracy per domain, per class and overall on domains the
  model never saw, confusion matrices, a comparison of several models.
- `predict`: top-k class names with probabilities for image files.
- `export`: a TensorFlow SavedModel or an ONNX file, checked against the
  Keras model before it is written.

Each works on a `.keras` file saved by `apps/finetune.py` (or any
`build_classifier` model given `class_names=`), which knows its class names
and image size (`keras_ldrop.read_model_card`).

Example:

```python
from keras_ldrop.inference import evaluate_models, export_classifier, predict_images
predictions = predict_images("runs/mine/best.keras", ["photos/"], top_k=3)
results = evaluate_models(["runs/mine/best.keras"], "new_site/", "reports/")
```
"""

from keras_ldrop.inference.classify import load_classifier
from keras_ldrop.inference.evaluate import evaluate_models
from keras_ldrop.inference.export import (
    ExportError,
    export_classifier,
    read_export_card,
    run_artefact,
)
from keras_ldrop.inference.predict import Predictions, predict_images

__all__ = [
    "ExportError",
    "Predictions",
    "evaluate_models",
    "export_classifier",
    "load_classifier",
    "predict_images",
    "read_export_card",
    "run_artefact",
]
