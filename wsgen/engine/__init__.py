"""Generators: vectorised, seeded, live-updatable sample sources."""
from wsgen.engine.base import Block, Generator, RandomStream, draw_seed
from wsgen.engine.params import GeneratorParams, InvalidParams, validate_params
from wsgen.engine.registry import ANOMALY_KINDS, GENERATORS, GeneratorSpec, UnknownGenerator, catalogue, create, get_spec

__all__ = ["ANOMALY_KINDS", "Block", "GENERATORS", "Generator", "GeneratorParams", "GeneratorSpec",
           "InvalidParams", "RandomStream", "UnknownGenerator", "catalogue", "create", "draw_seed",
           "get_spec", "validate_params"]
