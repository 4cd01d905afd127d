# A local stand-in for the official nginx image, for docker-compose.yml's proxy where no image
# registry can be reached (scripts/docker-offline-images.sh builds it). Debian's own nginx on
# the debootstrap base image, behaving like the official image in what the compose file uses:
# it reads /etc/nginx/conf.d/*.conf (the compose file mounts default.conf there), serves in
# the foreground and logs to standard output / error. Debian's own default site is removed.
#   docker build --network host --build-arg BASE_IMAGE=anakinra-cds-base:bookworm \
#       -f deploy/nginx.Dockerfile -t anakinra-nginx:bookworm deploy
ARG BASE_IMAGE=anakinra-cds-base:bookworm
FROM ${BASE_IMAGE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -f /etc/nginx/sites-enabled/default \
    && mkdir -p /etc/nginx/conf.d \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log \
    && rm -rf /var/lib/apt/lists/*

STOPSIGNAL SIGQUIT
EXPOSE 80
CMD ["nginx", "-g", "daemon off;"]
