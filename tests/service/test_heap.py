"""The loaded models are frozen out of the cyclic garbage collector's sight (its full collections
walked every vocabulary entry: 10-20 ms pauses under load), and a reload still frees the old
versions rather than freezing them for good."""

from __future__ import annotations

import asyncio
import gc
import weakref

from service.metrics import Metrics
from service.registry import Registry
from tests.service.support import settings


def test_loaded_models_are_frozen_and_a_reload_frees_the_old_versions():
    async def scenario():
        gc.unfreeze()  # whatever other tests' registries froze
        registry = Registry(settings(), Metrics())
        registry.load_all()
        assert gc.get_freeze_count() > 0
        old = weakref.ref(registry.get("imdb"))
        await registry.load("imdb")
        await registry.retired()
        assert old() is None, gc.get_referrers(old())
        assert registry.get("imdb") is not None
        assert gc.get_freeze_count() > 0
        await registry.close()

    asyncio.run(scenario())
