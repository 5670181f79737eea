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


SPAM_OPENERS = ["WINNER!", "URGENT:", "Congratulations!", "FREE entry:", "Claim now:", "Final notice:", "Hot deal:"]
SPAM_BODIES = [
    "you have won a {prize} - call {phone} to claim",
    "reply {word} to get your {prize} today, T&Cs apply",
    "your mobile number was selected for a {prize}, text {word} to {short}",
    "cheap {thing} at {pct}% off, visit {url} now",
    "you are owed £{money} in refunds, call {phone} before midnight",
    "txt {word} to {short} for a chance to win a {prize}",
]
HAM_BODIES = [
    "are we still on for {meal} at {time}?",
    "can you pick up {thing} on your way home",
    "running {minutes} minutes late, sorry",
    "thanks for {meal} yesterday, it was lovely",
    "did you see the {event} last night?",
    "I'll call you after the {event}",
    "mum says {meal} is at {time}, don't be late",
    "ok see you at the {place} at {time}",
    "have you finished the {work} yet",
    "happy birthday! hope you have a great day",
]
FILL = {
    "prize": ["£1000 cash prize", "holiday to Spain", "new phone", "£500 voucher", "free cruise"],
    "phone": ["09061701461", "08002986030", "09050000327", "0871277810"],
    "word": ["WIN", "YES", "CLAIM", "STOP", "PRIZE"], "short": ["87066", "80062", "85023"],
    "thing": ["ringtones", "loans", "milk", "bread", "the keys", "batteries", "insurance"],
    "pct": ["50", "70", "90"], "url": ["www.win-now.co", "cheapdeals.net"], "money": ["250", "1,450", "3,000"],
    "meal": ["dinner", "lunch", "breakfast", "coffee"], "time": ["6", "7.30", "noon", "8pm"],
    "minutes": ["5", "10", "20"], "event": ["match", "film", "meeting", "concert"],
    "place": ["station", "pub", "library", "gym"], "work": ["report", "homework", "slides"],
}


def fill(template: str, rng: np.random.Generator) -> str:
    return template.format(**{k: rng.choice(v) for k, v in FILL.items()})


GREETINGS = ["", "", "Hi! ", "Hey, ", "Hiya ", "Oi ", "Morning! ", "Hello, "]
SIGN_OFFS = ["", "", " x", " xx", " :)", " Love, {name}", " - {name}", " cheers", " ttyl", " ok?"]
NAMES = ["Tom", "Sam", "Jess", "Ali", "Mo", "Kate", "Raj", "Lucy", "Ben", "Zoe", "Dan", "Priya"]


def sms(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Short messages labelled spam/ham (about 1 in 4 spam), with some overlapping words."""
    rows = []
    while len(rows) < n:
        if rng.random() < 0.25:
            text = f"{rng.choice(SPAM_OPENERS)} {fill(str(rng.choice(SPAM_BODIES)), rng)}"
            text += str(rng.choice(["", "", " Ref: " + str(rng.integers(1000, 9999)), " Std txt rate.", " 18+ only."]))
            label = "spam"
        else:
            text = fill(str(rng.choice(HAM_BODIES)), rng)
            text = str(rng.choice(GREETINGS)) + text + str(rng.choice(SIGN_OFFS)).format(name=rng.choice(NAMES))
            label = "ham"
        rows.append((text[0].upper() + text[1:] if rng.random() < 0.5 else text, label))
    return pd.DataFrame(rows, columns=["message", "label"])


PEOPLE = ["John Smith", "Mary", "Ahmed Khan", "Li Wei", "Sofia Rossi", "Peter", "Anna Novak"]
PLACES = ["Paris", "New York", "Berlin", "Lagos", "Tokyo", "Lima", "Cairo"]
ORGS = ["Acme Corp", "the United Nations", "Globex", "Initech", "the BBC"]
NER_TEMPLATES = [
    "{PER} lives in {LOC} .", "{PER} works for {ORG} in {LOC} .", "{ORG} opened an office in {LOC} .",
    "Yesterday {PER} met {PER} at {ORG} .", "{PER} flew from {LOC} to {LOC} .", "The weather in {LOC} is mild today .",
    "{ORG} hired {PER} last year .", "Did {PER} visit {LOC} ?",
]


def ner_sentences(n: int, rng: np.random.Generator) -> list[list[tuple[str, str]]]:
    """Sentences as (word, BIO tag) pairs, in CoNLL-2003 spirit."""
    pools = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
    sentences = []
    for _ in range(n):
        words: list[tuple[str, str]] = []
        for piece in str(rng.choice(NER_TEMPLATES)).split():
            if piece.startswith("{"):
                kind = piece[1:-1]
                for i, word in enumerate(str(rng.choice(pools[kind])).split()):
                    words.append((word, f"{'B' if i == 0 else 'I'}-{kind}"))
            else:
                words.append((piece, "O"))
        sentences.append(words)
    return sentences


def daily_sales(days: int, rng: np.random.Generator) -> pd.DataFrame:
    """A daily series with trend, weekly and yearly seasonality and noise."""
    dates = pd.date_range("2021-01-01", periods=days, freq="D")
    t = np.arange(days)
    weekly = np.array([0.9, 0.95, 1.0, 1.0, 1.1, 1.35, 1.25])[dates.day_of_week]
    yearly = 1 + 0.2 * np.sin(2 * np.pi * (dates.day_of_year - 80) / 365.25)
    sales = (200 + 0.08 * t) * weekly * yearly + rng.normal(0, 8, days)
    promo = (rng.random(days) < 0.1).astype(int)
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "promo": promo,
                         "sales": np.round(sales * (1 + 0.15 * promo), 1)})


def corpus() -> str:
    """A small English corpus: scikit-learn's bundled dataset descriptions (BSD-licensed text)."""
    import sklearn.datasets as datasets

    loaders = ["load_iris", "load_wine", "load_breast_cancer", "load_diabetes", "load_digits", "load_linnerud"]
    return "\n\n".join(getattr(datasets, name)().DESCR.strip() for name in loaders) + "\n"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    data = churn(3200, rng)
    data.iloc[:3000].to_csv(HERE / "churn.csv", index=False)
    data.iloc[3000:].drop(columns=["churned"]).to_csv(HERE / "churn_new.csv", index=False)
    data = houses(2700, rng)
    data.iloc[:2500].to_csv(HERE / "houses.csv", index=False)
    data.iloc[2500:].drop(columns=["price"]).to_csv(HERE / "houses_new.csv", index=False)
    # The non-tabular examples draw from their own generators so the tables above never change.
    sms(800, np.random.default_rng(11)).to_csv(HERE / "sms.csv", index=False)
    sentences = ner_sentences(400, np.random.default_rng(12))
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in sentences:
        lines.extend(f"{word} {tag}" for word, tag in sentence)
        lines.append("")
    (HERE / "ner.conll").write_text("\n".join(lines))
    daily_sales(3 * 365, np.random.default_rng(13)).to_csv(HERE / "daily_sales.csv", index=False)
    (HERE / "corpus.txt").write_text(corpus())


if __name__ == "__main__":
    main()
