"""Regenerate the example tables (deterministic): `python examples/make_data.py`.

The CSVs are committed so the examples run offline on a fresh machine; this script documents how
they were made. The signal is non-linear with interactions and noise, like real tabular data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent / "data"


def churn(n: int, rng: np.random.Generator) -> pd.DataFrame:
    tenure = rng.integers(0, 73, n)
    contract = rng.choice(["month-to-month", "one year", "two year"], n, p=[0.55, 0.25, 0.2])
    internet = rng.choice(["DSL", "fiber optic", "none"], n, p=[0.35, 0.45, 0.2])
    payment = rng.choice(["electronic check", "mailed check", "bank transfer", "credit card"], n)
    region = rng.choice([f"region-{i}" for i in range(8)], n)
    senior = (rng.random(n) < 0.16).astype(int)
    calls = rng.poisson(1.5 + 1.5 * (internet == "fiber optic"), n)
    monthly = np.round(20 + 45 * (internet == "fiber optic") + 25 * (internet == "DSL") + rng.normal(0, 12, n), 2)
    monthly = np.clip(monthly, 18, None)
    total = np.round(monthly * tenure * rng.uniform(0.9, 1.05, n), 2)
    logit = (
        -1.2
        + 1.6 * (contract == "month-to-month") - 0.9 * (contract == "two year")
        + 0.9 * (internet == "fiber optic") - 0.6 * (internet == "none")
        + 0.7 * (payment == "electronic check")
        - 0.045 * tenure + 0.0006 * np.maximum(0, 24 - tenure) ** 2
        + 0.35 * np.maximum(0, calls - 2) + 0.4 * senior
        + 0.012 * (monthly - 60) * (contract == "month-to-month")
    )
    churned = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame({
        "customer_id": [f"C{100000 + i}" for i in range(n)],
        "tenure_months": tenure,
        "contract": contract,
        "internet": internet,
        "payment_method": payment,
        "region": region,
        "senior": senior,
        "support_calls": calls,
        "monthly_charges": monthly,
        "total_charges": total.astype(float),
        "churned": churned,
    })
    frame.loc[rng.random(n) < 0.04, "total_charges"] = np.nan
    frame.loc[rng.random(n) < 0.03, "payment_method"] = np.nan
    return frame


def houses(n: int, rng: np.random.Generator) -> pd.DataFrame:
    hood = rng.choice([f"hood-{c}" for c in "ABCDEFGHIJ"], n)
    hood_value = {f"hood-{c}": v for c, v in zip("ABCDEFGHIJ", [0.7, 0.8, 0.9, 1.0, 1.0, 1.1, 1.2, 1.35, 1.5, 1.8])}
    sqft = np.round(rng.lognormal(7.3, 0.35, n))
    bedrooms = np.clip(np.round(sqft / 600 + rng.normal(0, 0.7, n)), 1, 7).astype(int)
    bathrooms = np.clip(np.round(bedrooms * 0.6 + rng.normal(0, 0.5, n)) , 1, 5).astype(int)
    year = rng.integers(1920, 2024, n)
    condition = rng.choice(["poor", "fair", "good", "excellent"], n, p=[0.1, 0.3, 0.45, 0.15])
    cond_value = {"poor": 0.8, "fair": 0.92, "good": 1.0, "excellent": 1.12}
    garage = rng.random(n) < 0.6
    lot = np.round(rng.lognormal(8.5, 0.5, n))
    age = 2024 - year
    price = (
        120 * sqft ** 0.95
        * np.array([hood_value[h] for h in hood])
        * np.array([cond_value[c] for c in condition])
        * (1 + 0.08 * garage)
        * (1 - 0.004 * np.minimum(age, 60) + 0.000035 * np.maximum(0, age - 60) ** 2)
        + 9 * lot ** 0.8
        + 8000 * bathrooms
    ) * rng.lognormal(0, 0.08, n)
    frame = pd.DataFrame({
        "listing_id": np.arange(1, n + 1),
        "sqft": sqft,
        "bedrooms": bedrooms,
        "bathrooms": bathrooms,
        "year_built": year,
        "neighborhood": hood,
        "condition": condition,
        "garage": garage,
        "lot_size": lot,
        "price": np.round(price, -2),
    })
    frame.loc[rng.random(n) < 0.05, "lot_size"] = np.nan
    return frame


def main() -> None:
    HERE.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    data = churn(3200, rng)
    data.iloc[:3000].to_csv(HERE / "churn.csv", index=False)
    data.iloc[3000:].drop(columns=["churned"]).to_csv(HERE / "churn_new.csv", index=False)
    data = houses(2700, rng)
    data.iloc[:2500].to_csv(HERE / "houses.csv", index=False)
    data.iloc[2500:].drop(columns=["price"]).to_csv(HERE / "houses_new.csv", index=False)


if __name__ == "__main__":
    main()
