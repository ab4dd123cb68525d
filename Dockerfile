# The skucast image: the worker, the trainer and the replay tool (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: code edits do not reinstall torch. The CPU index
# serves torch without the CUDA libraries (GBs smaller; the container has no GPU).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install --extra-index-url https://download.pytorch.org/whl/cpu -r /tmp/requirements.txt

# Then the project itself, editable: the bundled data/ is found next to the code, as in a checkout.
COPY . .
RUN pip install --no-deps -e . \
 && useradd --create-home --uid 1000 skucast \
 && mkdir -p /app/models \
 && chown -R skucast /app/models

USER skucast
EXPOSE 6066
CMD ["skucast", "worker"]
