# A local stand-in for the official PostgreSQL image, for docker-compose.yml where no image
# registry can be reached (scripts/docker-offline-images.sh builds it). Debian's own
# PostgreSQL on the debootstrap base image, behaving like the official image in what the
# compose file uses: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB create the user and the
# database on the first start (an empty PGDATA), `postgres -c ...` as the command,
# `pg_isready` on PATH for the health check, the data in /var/lib/postgresql/data.
#   docker build --network host --build-arg BASE_IMAGE=anakinra-cds-base:bookworm \
#       -f deploy/postgres.Dockerfile -t anakinra-postgres:bookworm deploy
ARG BASE_IMAGE=anakinra-cds-base:bookworm
FROM ${BASE_IMAGE}

# No cluster made by the package: the entry point makes one in PGDATA on the first start.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-common \
    && sed -ri 's/#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf \
    && apt-get install -y --no-install-recommends postgresql \
    && ln -s "$(ls -d /usr/lib/postgresql/*/ | sort -V | tail -n 1)" /usr/lib/postgresql/current \
    && mkdir -p /var/run/postgresql /var/lib/postgresql/data \
    && chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql \
    && rm -rf /var/lib/apt/lists/*

ENV PATH=/usr/lib/postgresql/current/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
# Fast shutdown, as the official image.
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
