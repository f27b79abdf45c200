# One image for every service of the mesh. The service is the argument:
#
#   docker build -t shop-mesh:dev .
#   docker run --rm shop-mesh:dev orders        # node runner/instance.ts orders
#   docker run --rm shop-mesh:dev edge-backend  # beside the edge: reflection, the web app, mesh-wide ops
#   docker run --rm shop-mesh:dev migrate orders  # the chart's migration Job
#
# The Helm chart (helm/shop) passes the argument. Node 24 runs the TypeScript
# sources as they are (type stripping), so there is no compile step: the build
# only installs the production dependencies of platform/ and services/*, and
# the final stage copies them with the sources. Docker cannot run on the machines this project
# is developed on: keep this file short enough to review by eye.

# Pinned like the project's own Node (package.json devDependency "node").
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# npm ci reads every workspace's package.json; .dockerignore keeps web/ down to its manifest.
COPY package.json package-lock.json ./
COPY platform/package.json platform/
COPY services/ services/
COPY web/package.json web/
# Production dependencies of platform and every service (not the root's
# devDependencies: buf, TypeScript, mocha, the node package, vite), and the
# workspace links node_modules/@shop/* -> ../../platform, ../../services/*.
RUN npm ci --omit=dev --workspace=platform --workspace=services --no-audit --no-fund --ignore-scripts

# The browser app, served at / by the edge backend (`edge-backend`): built
# here with the dev dependencies (vite), only its static output is kept.
FROM ${NODE_IMAGE} AS web
WORKDIR /app
COPY package.json package-lock.json ./
COPY platform/package.json platform/
COPY services/ services/
COPY web/ web/
COPY gen gen
RUN npm ci --workspace=web --include-workspace-root --no-audit --no-fund --ignore-scripts \
 && cd web && ../node_modules/.bin/vite build

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY package.json topology.json ./
COPY gen gen
COPY platform platform
COPY services services
COPY runner runner
COPY --from=web /app/web/dist web/dist
# runner/instance.ts reads the method contracts, the port scheme and the mesh identities from these,
# and the console's call paths from the contracts check (contracts/, with the retry policy).
COPY envoy/contracts.ts envoy/ports.ts envoy/mtls.ts envoy/policy.ts envoy/
COPY contracts contracts
# Any non-root uid works: every file is root-owned and world-readable, nothing
# is written (the chart also sets readOnlyRootFilesystem). 65532 is the
# "nonroot" of distroless images, the Envoy sidecar's user too.
USER 65532:65532
# exec form, no shell in between: node is PID 1 and receives SIGTERM itself;
# the platform drains (health NOT_SERVING, in-flight calls finish within
# DRAIN_TIMEOUT_MS, default 10000) and exits 0, as under `make mesh`.
ENTRYPOINT ["node", "runner/instance.ts"]
