-- A least-privilege role for the Tidemark agent. Run as a superuser (or the tables' owner with
-- CREATEROLE) in the source database:
--
--   psql "postgres://admin@db/shop" -v role=tidemark -v tables='public.products, public.categories' \
--        -v schemas=public [-v password='…'] -f Deploy/least-privilege.sql
--
-- What the agent needs, and nothing more:
--   * LOGIN and REPLICATION: to create its logical replication slot and stream from it;
--   * CONNECT on the database and USAGE on the tables' schemas;
--   * SELECT on the configured tables: backfill chunks and re-reads;
--   * ownership of the publication `tidemark`, which this script creates with exactly the tables.
--     No CREATE on the database: creating a publication needs it (and ownership of every table
--     FOR TABLE names), which is why an administrator creates it here. Handing it over needs CREATE
--     for the new owner only when a non-superuser runs ALTER PUBLICATION … OWNER TO (checked on
--     PostgreSQL 15 and 18); if you run this script as such a role, add
--     GRANT CREATE ON DATABASE … TO the role first. Adding a table later (a new entity) needs the
--     table's ownership too, so an administrator does it: ALTER PUBLICATION tidemark ADD TABLE ONLY public.x.
-- The role cannot write to any table, and is no superuser. Tests/LiveTests/LeastPrivilegeTests.swift
-- runs the agent under this role on PostgreSQL 15 and 18.
\set ON_ERROR_STOP on
\if :{?role}
\else
  \echo 'pass -v role=NAME -v tables=LIST -v schemas=LIST'
  \quit
\endif
\if :{?publication}
\else
  \set publication tidemark
\endif

SELECT current_database() AS dbname \gset

\if :{?password}
CREATE ROLE :"role" LOGIN REPLICATION PASSWORD :'password';
\else
-- No password: for peer, certificate or trust authentication (see pg_hba.conf).
CREATE ROLE :"role" LOGIN REPLICATION;
\endif

GRANT CONNECT ON DATABASE :"dbname" TO :"role";
GRANT USAGE ON SCHEMA :schemas TO :"role";
GRANT SELECT ON TABLE :tables TO :"role";

-- Exactly the configured tables. The agent checks membership at every start and adds a table
-- that was dropped from it again (that needs the table's ownership; otherwise it logs the fix).
CREATE PUBLICATION :"publication" FOR TABLE :tables WITH (publish_via_partition_root = false);
ALTER PUBLICATION :"publication" OWNER TO :"role";
