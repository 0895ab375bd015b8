# credgate container image.
#
#   docker build -t credgate .
#   docker run --rm -p 127.0.0.1:8080:8080 -e ASSURED_API_KEY=... -e ASSURED_USER=... -e ASSURED_PASS=... credgate
#
# The image listens on 0.0.0.0:8080 inside the container (CREDGATE_HOST below); publish the port on the host's
# loopback only, as above: whoever reaches credgate can use the key it holds. scripts/container-smoke.sh runs
# the release binary exactly as this image's entrypoint would (same ENV, CMD, user and file layout).

# ---- build: the official Swift 6.3 image on Ubuntu 24.04 (noble), the toolchain the project is tested with. Noble,
# not jammy, because its glibc (2.39) loads packed relative relocations (see the build line); build and runtime
# stages use the same release so that the binary's glibc needs are met.
ARG SWIFT_IMAGE=swift:6.3-noble
FROM ${SWIFT_IMAGE} AS build
WORKDIR /build
# The dependencies first: this layer stays cached while only the sources change.
COPY Package.* ./
RUN swift package resolve
COPY Sources ./Sources
# SwiftPM loads every target of the manifest, test targets included, so Tests/ must be present.
COPY Tests ./Tests
COPY link ./link
# --static-swift-stdlib links the Swift runtime and Foundation into the binary: the runtime stage needs no Swift.
# --no-export-dynamic: the static link otherwise exports ~50,000 symbols whose tables stay resident (2-3 MiB of
# RSS, measured by bench/run.sh, which builds with this line's arguments).
# -z pack-relative-relocs (DT_RELR): a position-independent static link carries 150,000 relative relocations (a
# 3.4 MiB .rela.dyn) that the dynamic loader reads at every start; packed, the table is a few KiB. The binary stays
# position-independent (its code at a random address: ASLR, which a gateway holding credentials keeps). It needs
# glibc 2.36 or later where it runs (GLIBC_ABI_DT_RELR), hence noble. (-no-pie would save about the same memory, 0.4
# MiB more, by giving up that randomisation: not worth it.)
# -use-ld=lld: the toolchain's own linker rather than clang's default gold (which cannot pack relocations); its
# layout also leaves 0.4-0.7 MiB less resident.
# -function-sections (Swift) and -ffunction-sections (C) put each function in its own section, so that
# --symbol-ordering-file=link/credgate.order can place the functions the data path runs first, together (the list is
# made by scripts/order-file.sh; names it holds that no longer exist are skipped, --no-warn-symbol-ordering). After
# start-up credgate unmaps its code (Sources/credgate/ResidentCode.swift) and only what runs comes back: together,
# a few MiB rather than 64 KiB runs spread over the whole text.
# Idle VmRSS of the shipped config, binary read from disk (issue 13): gold PIE 31.4 MiB (RssAnon 3.3), lld PIE 30.7,
# lld with packed relocations 27.8, lld -no-pie 27.4 (RssAnon 1.8).
# -enforce-exclusivity=unchecked: the compiler still proves exclusive access statically, but the shipped binary
# drops the run-time check of class properties and globals (swift_beginAccess: 3.3% of the API-key route's CPU,
# most of it in NIO's ByteBuffer writes). Debug builds, which run every test and the fuzzers, keep the check.
RUN swift build -c release --static-swift-stdlib -Xswiftc -enforce-exclusivity=unchecked -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xlinker --symbol-ordering-file=link/credgate.order -Xlinker --no-warn-symbol-ordering --product credgate \
    && mkdir /staging \
    && cp "$(swift build -c release --static-swift-stdlib --show-bin-path)/credgate" /staging/credgate \
    && strip /staging/credgate

# ---- runtime
FROM ubuntu:noble
# What the binary needs, from `ldd` on the --static-swift-stdlib build: libc.so.6, libm.so.6, libstdc++.so.6,
# libgcc_s.so.1, ld-linux, and libz.so.1 since AsyncHTTPClient came in for session logins (packages libc6,
# libstdc++6, libgcc-s1, zlib1g; noble names libssl and libcurl with the t64 suffix). BoringSSL (swift-nio-ssl, swift-crypto) and ICU (Foundation) are compiled in;
# FoundationNetworking is not used, so libcurl is not linked. Re-check with `ldd` when a dependency is added.
# ca-certificates is the trust store for https upstreams. libssl3 and libcurl4 are not needed by today's binary;
# they are installed as the issue asks, so that a later change using FoundationNetworking or system TLS still
# runs (about 5 MiB). curl (which brings libcurl4 anyway) serves the HEALTHCHECK and the Kubernetes exec probes.
RUN export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends ca-certificates libstdc++6 zlib1g libssl3t64 libcurl4t64 curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 credgate \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin credgate

COPY --from=build /staging/credgate /usr/local/bin/credgate
COPY Config/credgate.yaml /etc/credgate/credgate.yaml
# The WriftAI profile, for CREDGATE_CONFIG=/etc/credgate/wriftai.yaml (alone) or
# CREDGATE_CONFIG=/etc/credgate/credgate.yaml,/etc/credgate/wriftai.yaml (both, each on its own port).
COPY Config/wriftai.yaml /etc/credgate/wriftai.yaml

# Numeric, so that Kubernetes' runAsNonRoot can verify it (deploy/kubernetes/sidecar.yaml).
USER 10001:10001
EXPOSE 8080 8081
ENV CREDGATE_CONFIG=/etc/credgate/credgate.yaml \
    CREDGATE_HOST=0.0.0.0 \
    CREDGATE_LOG_FORMAT=json
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${CREDGATE_PORT:-8080}/credgate/healthz" || exit 1
ENTRYPOINT ["/usr/local/bin/credgate"]
CMD ["serve"]
