// Refreshing local copies of the remote databases (the seed's refresh_mongo_db / refresh_postgres_db).
export { runMongoRefresh, type MongoRefreshOptions, type MongoRefreshReport, type MongoRefreshProgress } from './mongo-refresh.ts';
export { runPostgresRefresh, type PgRefreshOptions, type PgRefreshReport, type PgRefreshProgress } from './postgres-refresh.ts';
export type { PgRefreshFilters } from '../connect/config.ts';
