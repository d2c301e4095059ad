FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY connectors ./connectors
COPY workers ./workers
COPY sandbox ./sandbox
COPY examples ./examples
RUN pip install --no-cache-dir -e .
USER nobody
ENTRYPOINT []
CMD ["crmsync", "--help"]
