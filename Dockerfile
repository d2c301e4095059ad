# Build a wheel from the checkout, then install that wheel (not an editable tree) into a clean image:
# the image runs crmsync exactly as `pip install crmsync-*.whl` on a server would, package data included.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY connectors ./connectors
COPY workers ./workers
COPY sandbox ./sandbox
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
USER nobody
ENTRYPOINT []
CMD ["crmsync", "--help"]
