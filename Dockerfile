# syntax=docker/dockerfile:1
# meshid: build with the full toolchain, run with production dependencies only, as a non-root user.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --ignore-scripts
COPY src ./src
COPY proto ./proto
COPY test ./test
COPY bench ./bench
COPY scripts ./scripts
COPY examples ./examples
# The build compiles the protos (from the dev dependency @grpc/grpc-js-xds) into dist/proto, then tsc.
RUN npm run build

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the "prepare" build step needs dev dependencies and already ran above.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# The proto descriptor: the only protobuf file read at run time.
COPY --from=build /src/dist/proto ./dist/proto
COPY package.json ./
COPY deploy/policies ./deploy/policies
# meshid dev renders its Envoy bootstrap from this template.
COPY deploy/envoy ./deploy/envoy
# The "node" user (uid 1000) of the base image; Kubernetes manifests also set runAsNonRoot.
USER 1000:1000
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["--help"]
