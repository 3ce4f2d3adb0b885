# syntax=docker/dockerfile:1
# video-ingest: `ingest serve` (an upload node, the default; with AMQP_URL it also consumes the
# fan-out jobs) or `ingest worker --kinds transcode,snapshot` (the media jobs).
# Build: docker build -t video-ingest .   Run: see docker-compose.yml and the README's Deploy section.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY config ./config
COPY src ./src
COPY consumers ./consumers
COPY web ./web
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim AS runtime
# Debian's ffmpeg: the media jobs use it (FFMPEG_PATH/FFPROBE_PATH below), not the npm-shipped builds.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown node:node /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/config ./config
# The web uploader's bundle (built by `npm run build` into web/dist).
COPY --from=build /app/web/dist ./web/dist
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=1080 \
    DATA_DIR=/data \
    FFMPEG_PATH=/usr/bin/ffmpeg \
    FFPROBE_PATH=/usr/bin/ffprobe
USER node
VOLUME ["/data"]
EXPOSE 1080
# Liveness only (/healthz); the load balancer checks readiness (/readyz). Workers have no HTTP
# server: compose turns this check off for them.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 1080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# tini forwards SIGTERM to node, which drains requests and jobs before exiting.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/src/cli/index.js"]
CMD ["serve"]
