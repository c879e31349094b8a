"""The three models this product serves: their labels, named features and typed endpoints.

Data, not code, shared by the trainer (which writes them into each version's config) and the
service (which generates each model's typed endpoint from its config). Pure pydantic: no
TensorFlow.
"""

from contract.config import Feature, Target
from contract.endpoint import SchemaNames, TabularEndpoint, TextEndpoint

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


# The typed endpoints, /api/imdb, /api/reuters and /api/boston, as their clients know them.
IMDB_ENDPOINT = TextEndpoint(
    name="sentiment",
    description="Sentiment of movie reviews.",
    items="reviews",
    items_description="Raw review texts (English)",
    example="A wonderful little film: the acting is superb, the script sharp and funny, "
    "and I would happily watch it again.",
    schemas=SchemaNames(request="ReviewsRequest", prediction="Sentiment", answer="SentimentAnswer"),
)
REUTERS_ENDPOINT = TextEndpoint(
    name="topics",
    description="Topics of newswires, most probable first.",
    items="newswires",
    items_description="Raw newswire texts",
    example="the company said net profit rose to 12 mln dlrs or 85 cts a share in the first "
    "quarter from 9 mln dlrs or 64 cts a year ago on revenues of 410 mln dlrs",
    word_ids=True,
    word_ids_description="Or newswires already encoded as keras.datasets.reuters encodes them "
    "(1 = start, 2 = out of vocabulary, word rank + 3); ids beyond the model's vocabulary "
    "count as out of vocabulary",
    label="topic",
    schemas=SchemaNames(
        request="NewswiresRequest",
        prediction="Topics",
        label_score="TopicScore",
        answer="TopicsAnswer",
    ),
)
# The first house of the Boston data set.
BOSTON_EXAMPLE = dict(zip([f.name for f in BOSTON_FEATURES], [
    0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98,
], strict=True))  # fmt: skip
BOSTON_ENDPOINT = TabularEndpoint(
    name="price",
    description="Median value of owner-occupied homes, in $1000s.",
    items="houses",
    example=BOSTON_EXAMPLE,
    schemas=SchemaNames(
        request="HousesRequest", row="House", prediction="Price", answer="PricesAnswer"
    ),
)
