# Keel as a container image: the self-contained single-file `keel` on Microsoft's runtime-deps base (no .NET runtime
# needed in the image), running as the base image's non-root user. Build at the repository root:
#   docker build -t keel:latest .
#   docker run --rm -p 2379:2379 -p 2381:2381 keel:latest      # one member; deploy/kubernetes/ for a cluster
# The .git folder is part of the build context on purpose: MinVer reads the version from git tags.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Keel.Cli -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true -o /out \
    && rm -f /out/*.pdb /out/*.xml

FROM mcr.microsoft.com/dotnet/runtime-deps:10.0
COPY --from=build /out/keel /usr/local/bin/keel
# The base image's unprivileged user (uid 1654); the data directory is a volume it owns.
RUN mkdir -p /var/lib/keel && chown 1654:1654 /var/lib/keel
USER 1654
VOLUME /var/lib/keel
EXPOSE 2379/tcp 2380/tcp 2380/udp 2381/tcp
# Defaults for one member reachable from outside the container; every flag can be overridden on `docker run`.
ENV KEEL_DATA_DIR=/var/lib/keel \
    KEEL_LISTEN_CLIENT_URLS=http://0.0.0.0:2379 \
    KEEL_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379 \
    KEEL_LISTEN_PEER_URLS=http://0.0.0.0:2380 \
    KEEL_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2380 \
    KEEL_LISTEN_METRICS_URLS=http://0.0.0.0:2381
ENTRYPOINT ["/usr/local/bin/keel"]
CMD ["serve"]
