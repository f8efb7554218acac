-- Tiled keeps its catalog (database `catalog`, POSTGRES_DB) and its tabular data apart.
CREATE DATABASE tabular OWNER tiled;
