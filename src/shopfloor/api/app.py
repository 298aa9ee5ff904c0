"""FastAPI application factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from .responses import FastJSONResponse

from .. import __version__
from ..bootstrap import Container, build_container
from ..config import Settings
from .auth import Authenticator
from .errors import install_error_handlers
from .routes import catalog, checkout, payments, promise, restock


def create_app(container: Container) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        container.close()

    app = FastAPI(
        title="shopfloor",
        version=__version__,
        description="Buy path, promise engine, forecasting brain and control tower for online stores.",
        default_response_class=FastJSONResponse,
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.authenticator = Authenticator(container.engine)
    install_error_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        """Liveness. Touches no database."""
        return {"status": "ok"}

    app.include_router(catalog.router)
    app.include_router(checkout.router)
    app.include_router(payments.router)
    app.include_router(promise.router)
    app.include_router(restock.router)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (``--factory``): settings from the environment."""
    return create_app(build_container(Settings()))
