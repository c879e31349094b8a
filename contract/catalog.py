"""The three models this product serves: their labels and named features.

Data, not code, shared by the trainer (which writes them into each version's config) and the
service (whose typed endpoints validate against them). Pure pydantic: no TensorFlow.
"""

from contract.config import Feature, Target

IMDB_LABELS = ["negative", "positive"]

# The names keras.datasets.reuters.get_label_names() gives, in label order.
REUTERS_LABELS = [
    "cocoa",
    "grain",
    "veg-oil",
    "earn",
    "acq",
    "wheat",
    "copper",
    "housing",
    "money-supply",
    "coffee",
    "sugar",
    "trade",
    "reserves",
    "ship",
    "cotton",
    "carcass",
    "crude",
    "nat-gas",
    "cpi",
    "money-fx",
    "interest",
    "gnp",
    "meal-feed",
    "alum",
    "oilseed",
    "gold",
    "tin",
    "strategic-metal",
    "livestock",
    "retail",
    "ipi",
    "iron-steel",
    "rubber",
    "heat",
    "jobs",
    "lei",
    "bop",
    "zinc",
    "orange",
    "pet-chem",
    "dlr",
    "gas",
    "silver",
    "wpi",
    "hog",
    "lead",
]

# The 13 columns of the Boston housing data (Harrison & Rubinfeld, 1978), in order, each with the
# range its definition allows.
BOSTON_FEATURES = [
    Feature(name="crim", description="Per-capita crime rate by town", minimum=0),
    Feature(
        name="zn",
        description="Share of residential land zoned for lots over 25,000 sq. ft.",
        unit="%",
        minimum=0,
        maximum=100,
    ),
    Feature(
        name="indus",
        description="Share of non-retail business acres per town",
        unit="%",
        minimum=0,
        maximum=100,
    ),
    Feature(
        name="chas",
        description="Tract bounds the Charles River (1) or not (0)",
        minimum=0,
        maximum=1,
    ),
    Feature(
        name="nox",
        description="Nitric oxides concentration",
        unit="parts per 10 million",
        minimum=0,
        maximum=10,
    ),
    Feature(
        name="rm",
        description="Average number of rooms per dwelling",
        unit="rooms",
        minimum=1,
        maximum=30,
    ),
    Feature(
        name="age",
        description="Share of owner-occupied units built before 1940",
        unit="%",
        minimum=0,
        maximum=100,
    ),
    Feature(
        name="dis",
        description="Weighted distance to five Boston employment centres",
        unit="miles",
        minimum=0,
        maximum=100,
    ),
    Feature(
        name="rad", description="Index of accessibility to radial highways", minimum=1, maximum=24
    ),
    Feature(
        name="tax",
        description="Full-value property-tax rate",
        unit="$ per $10,000",
        minimum=0,
        maximum=10_000,
    ),
    Feature(
        name="ptratio",
        description="Pupil-teacher ratio by town",
        unit="pupils per teacher",
        minimum=1,
        maximum=100,
    ),
    Feature(
        name="b",
        description="1000·(Bk − 0.63)², Bk the town's share of Black residents "
        "(as defined in the 1978 data set)",
        minimum=0,
        maximum=396.9,
    ),
    Feature(
        name="lstat",
        description="Share of the population of lower status",
        unit="%",
        minimum=0,
        maximum=100,
    ),
]


BOSTON_TARGET = Target(
    name="price", description="Median value of owner-occupied homes", unit="$1000s"
)
