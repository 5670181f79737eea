"""Object detection networks and their numpy helpers (no mltrainer imports): a small CenterNet-style
detector, its training targets and loss, box decoding and mAP@0.5.

This file is inlined into the generated train.py and copied next to the exported predict.py, so the
architecture summary, training, prediction and the export's test score all use the same code.

Why CenterNet: one heatmap per class plus a size/offset map at a single stride needs no anchors and
no NMS (a 3×3 max-pool picks the peaks), so a few conv blocks train on a CPU in minutes and the
forward pass is one tensor out — which TorchScript and ONNX export without custom ops.

The model takes raw pixels (float, 0-255, N×C×S×S) and returns one tensor (N, K + 4, S/stride,
S/stride): K class logits per cell, then log(width/stride), log(height/stride) and the sub-cell
offset (x, y) of an object centred in that cell. Boxes are xyxy in pixels of the S×S input.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

#: The model catalogue: arch name → what it is, in words.
ARCHS = {"centernet": "CenterNet-style detector (conv stages to stride 2^layers, class heatmaps + size/offset head)"}
#: The heatmap bias at init: every cell starts at p = 0.1, so the first focal loss is moderate (CenterNet's choice).
HEAT_PRIOR = 0.1
#: Peaks kept per image when decoding, and the score below which a peak is dropped (low for mAP).
TOP_K = 100
MIN_SCORE = 0.01


class Normalize(nn.Module):
    """Pixels 0-255 → (x/255 - mean) / std per channel (the training split's statistics)."""

    def __init__(self, mean: list, std: list):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([s if s > 1e-6 else 1.0 for s in std], dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x / 255.0 - self.mean) / self.std


def conv_block(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def detector_widths(hidden: int, layers: int) -> list:
    """Channels of the stem and of each downsampling stage: doubling from ``hidden``, capped at 4×."""
    return [hidden * min(2 ** i, 4) for i in range(layers + 1)]


def output_side(image_size: int, stride: int) -> int:
    """Cells a side of the output map: each stride-2 conv (padding 1) rounds up."""
    side = int(image_size)
    while stride > 1:
        side, stride = (side + 1) // 2, stride // 2
    return side


def default_layers(image_size: int) -> int:
    """Downsampling stages: stride 4 up to 128 px, 8 above; the output map keeps at least 4 cells a side."""
    layers = 2 if image_size <= 128 else 3
    while layers > 0 and image_size // (2 ** layers) < 4:
        layers -= 1
    return layers


class CenterNet(nn.Module):
    """Normalise → stem → ``layers`` stride-2 stages → a dilated context block → heatmap and box heads."""

    def __init__(self, spec: dict):
        super().__init__()
        if spec.get("arch", "centernet") not in ARCHS:
            raise ValueError(f"unknown detector arch {spec.get('arch')!r}; choose one of {', '.join(ARCHS)}")
        self.n_classes = int(spec["n_classes"])
        self.stride = 2 ** int(spec["layers"])
        widths = detector_widths(int(spec["hidden"]), int(spec["layers"]))
        self.normalize = Normalize(spec["mean"], spec["std"])
        blocks = [conv_block(int(spec["channels"]), widths[0])]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks += [conv_block(c_in, c_out, stride=2), conv_block(c_out, c_out)]
        c = widths[-1]
        blocks += [conv_block(c, c, dilation=2), conv_block(c, c)]  # context: objects larger than a cell
        self.features = nn.Sequential(*blocks)
        self.drop = nn.Dropout2d(float(spec.get("dropout", 0.0)))
        self.heat = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, self.n_classes, 1))
        self.box = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 4, 1))
        nn.init.constant_(self.heat[-1].bias, -math.log((1 - HEAT_PRIOR) / HEAT_PRIOR))
        nn.init.normal_(self.box[-1].weight, std=0.01)
        nn.init.zeros_(self.box[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.drop(self.features(self.normalize(x)))
        return torch.cat([self.heat(f), self.box(f)], dim=1)


def build_model(spec: dict) -> CenterNet:
    """The model described by ``spec`` (model.json's "architecture"): arch, channels, image_size, n_classes,
    hidden, layers, dropout, mean, std."""
    return CenterNet(spec)


# ----------------------------------------------------------------------------- targets and loss
def make_targets(records: list, n_classes: int, image_size: int, stride: int) -> tuple:
    """Boxes → (heat (N, K, h, w), box (N, 4, h, w), mask (N, h, w)) float32 arrays.

    Each box puts an elliptic Gaussian (σ ≈ its size / 6 cells, at least 0.5) on its class heatmap,
    exactly 1 at the cell holding its centre; that cell also gets log width/height (in cells) and the
    centre's offset inside the cell.
    """
    side = output_side(image_size, stride)
    n = len(records)
    heat = np.zeros((n, n_classes, side, side), dtype=np.float32)
    box = np.zeros((n, 4, side, side), dtype=np.float32)
    mask = np.zeros((n, side, side), dtype=np.float32)
    grid = np.arange(side, dtype=np.float32) + 0.5
    for i, record in enumerate(records):
        for (x1, y1, x2, y2), label in zip(record["boxes"], record["labels"]):
            w, h = max(x2 - x1, 1e-3) / stride, max(y2 - y1, 1e-3) / stride
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            ix, iy = min(side - 1, max(0, int(cx))), min(side - 1, max(0, int(cy)))
            sx, sy = max(0.5, 0.54 * w / 3), max(0.5, 0.54 * h / 3)
            g = np.exp(-((grid[None, :] - (ix + 0.5)) ** 2) / (2 * sx * sx) - ((grid[:, None] - (iy + 0.5)) ** 2) / (2 * sy * sy))
            heat[i, label] = np.maximum(heat[i, label], g)
            heat[i, label, iy, ix] = 1.0
            box[i, :, iy, ix] = (math.log(w), math.log(h), cx - ix, cy - iy)
            mask[i, iy, ix] = 1.0
    return heat, box, mask


def detection_loss(out: torch.Tensor, heat: torch.Tensor, box: torch.Tensor, mask: torch.Tensor) -> tuple:
    """CenterNet's loss: penalty-reduced focal loss on the heatmaps + L1 on size/offset at object centres,
    both per object. Returns (total, heatmap part, box part)."""
    k = heat.shape[1]
    logits = out[:, :k].float()
    p = torch.sigmoid(logits)
    pos = (heat >= 1.0).float()
    pos_loss = -F.logsigmoid(logits) * (1 - p) ** 2 * pos
    neg_loss = -F.logsigmoid(-logits) * p ** 2 * (1 - heat) ** 4 * (1 - pos)
    objects = mask.sum().clamp(min=1.0)
    heat_loss = (pos_loss.sum() + neg_loss.sum()) / objects
    box_loss = ((out[:, k:].float() - box).abs().sum(1) * mask).sum() / objects
    return heat_loss + box_loss, heat_loss, box_loss


# ----------------------------------------------------------------------------- decoding
def decode(out: torch.Tensor, n_classes: int, stride: int, image_size: int, top_k: int = TOP_K,
           min_score: float = MIN_SCORE) -> list:
    """Model output → per image (boxes (M, 4) xyxy pixels, scores (M,), labels (M,)) numpy arrays, best first."""
    out = out.float()
    heat = torch.sigmoid(out[:, :n_classes])
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
    batch, _, h, w = heat.shape
    k = min(top_k, n_classes * h * w)
    scores, index = peaks.reshape(batch, -1).topk(k, dim=1)
    labels = torch.div(index, h * w, rounding_mode="floor")
    cell = index % (h * w)
    iy, ix = torch.div(cell, w, rounding_mode="floor"), cell % w
    params = out[:, n_classes:].reshape(batch, 4, h * w)
    params = torch.gather(params, 2, cell[:, None, :].expand(batch, 4, k))
    size_w, size_h = params[:, 0].clamp(max=10).exp() * stride, params[:, 1].clamp(max=10).exp() * stride
    cx, cy = (ix.float() + params[:, 2]) * stride, (iy.float() + params[:, 3]) * stride
    boxes = torch.stack([cx - size_w / 2, cy - size_h / 2, cx + size_w / 2, cy + size_h / 2], dim=2)
    boxes = boxes.clamp(0.0, float(image_size))
    result = []
    for b in range(batch):
        keep = scores[b] >= min_score
        result.append((boxes[b][keep].cpu().numpy(), scores[b][keep].cpu().numpy(), labels[b][keep].cpu().numpy()))
    return result


# ----------------------------------------------------------------------------- mAP@0.5 (pure numpy)
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (M, 4) with every box in ``b`` (N, 4), xyxy."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def mean_average_precision(predictions: list, records: list, n_classes: int, iou_threshold: float = 0.5) -> dict:
    """PASCAL VOC-style mAP (all-point interpolated AP per class, averaged over the classes that have
    ground-truth boxes). ``predictions``: per image (boxes, scores, labels); ``records``: per image
    {"boxes", "labels"}. Each ground-truth box matches at most one prediction (the highest-scoring)."""
    aps = {}
    for c in range(n_classes):
        truth = [np.asarray([b for b, l in zip(r["boxes"], r["labels"]) if l == c], dtype=np.float64).reshape(-1, 4)
                 for r in records]
        n_truth = sum(len(t) for t in truth)
        if n_truth == 0:
            continue
        found = [(float(s), i, np.asarray(b, dtype=np.float64)) for i, (boxes, scores, labels) in enumerate(predictions)
                 for b, s, l in zip(boxes, scores, labels) if int(l) == c]
        found.sort(key=lambda item: -item[0])
        used = [np.zeros(len(t), dtype=bool) for t in truth]
        tp = np.zeros(len(found))
        for j, (_, i, b) in enumerate(found):
            if len(truth[i]):
                ious = box_iou(b[None], truth[i])[0]
                best = int(ious.argmax())
                if ious[best] >= iou_threshold and not used[i][best]:
                    used[i][best] = True
                    tp[j] = 1.0
        if not len(found):
            aps[c] = 0.0
            continue
        hits = np.cumsum(tp)
        recall = hits / n_truth
        precision = hits / np.arange(1, len(found) + 1)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[0.0], precision, [0.0]])
        for k in range(len(mpre) - 2, -1, -1):
            mpre[k] = max(mpre[k], mpre[k + 1])
        steps = np.flatnonzero(mrec[1:] != mrec[:-1])
        aps[c] = float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    return {"map50": float(np.mean(list(aps.values()))) if aps else 0.0, "per_class": aps}
