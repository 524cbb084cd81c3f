# capstan container image. `make image` builds a static capstan on the host
# first (CGO_ENABLED=0, into .image/capstan), so no base image is pulled:
# the image is FROM scratch and holds the binary and a default config only.
FROM scratch
COPY .image/capstan /capstan
COPY deploy/capstan.yaml /etc/capstan/capstan.yaml
# The data directory (embedded JetStream store, local state); server.data_dir
# in deploy/capstan.yaml points here. Owned by the non-root user below.
COPY --chown=65532:65532 .image/data /data
VOLUME /data
USER 65532:65532
EXPOSE 8080
# scratch has no curl: the binary checks itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/capstan", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/capstan", "serve", "--config", "/etc/capstan/capstan.yaml"]
