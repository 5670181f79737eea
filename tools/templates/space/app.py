"""Gradio demo of a model trained by mltrainer: loads the model folder next to this file (or
MODEL_DIR) through its own predict.py and answers predictions — a table of rows for tabular models,
a text for the others. ``space.json`` (written by mltrainer) names the title, columns and an example.
"""

import importlib.util
import json
import os
from pathlib import Path

import gradio as gr

HERE = Path(__file__).resolve().parent
MODEL_DIR = Path(os.environ.get("MODEL_DIR") or HERE / "model")
INFO = json.loads((HERE / "space.json").read_text(encoding="utf-8"))


def load_predict():
    spec = importlib.util.spec_from_file_location("mltrainer_predict", MODEL_DIR / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PREDICT = load_predict()


def predict_table(rows):
    """Rows typed into the table → the same rows with the model's prediction column(s)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=INFO["columns"]) if not isinstance(rows, pd.DataFrame) else rows.copy()
    for column in INFO.get("numeric", []):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return PREDICT.predict_frame(str(MODEL_DIR), frame)


PREDICTOR = None


def predict_text(text):
    """One input (a text, a prompt, a sentence) → the model's answer as text."""
    global PREDICTOR
    if PREDICTOR is None:
        PREDICTOR = PREDICT.Predictor.load(str(MODEL_DIR))
    return str(PREDICTOR.predict([text])[0])


def build():
    title, about = INFO.get("title", "mltrainer model"), INFO.get("description", "")
    if hasattr(PREDICT, "predict_frame"):
        table = gr.Dataframe(headers=INFO["columns"], value=INFO.get("example") or None, label="rows")
        return gr.Interface(fn=predict_table, inputs=table, outputs=gr.Dataframe(label="predictions"),
                            title=title, description=about, flagging_mode="never", api_name="predict")
    return gr.Interface(fn=predict_text, inputs=gr.Textbox(label="input", value=INFO.get("example_text") or ""),
                        outputs=gr.Textbox(label="prediction"), title=title, description=about,
                        flagging_mode="never", api_name="predict")


demo = build()

if __name__ == "__main__":
    demo.launch()
