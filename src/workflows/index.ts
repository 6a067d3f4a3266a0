/**
 * Every workflow the aceh-release worker runs. Deterministic zone: no I/O, no Node builtins, activities are
 * imported as types only (see eslint.config.mjs). The release and backup workflows land here.
 */
export {};
