"""What routes depend on, as FastAPI dependencies: the service state, the settings, and the bearer token check.

Dependencies are `async` so FastAPI runs them on the event loop instead of hopping to a worker thread per request.
The token check is a security dependency, so /openapi.json declares bearer auth on exactly the routes that use it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reconciler.service import mutations
from reconciler.service.state import Service, ServiceError

# A bearer token guards deletes in S3: one a person can type from memory could be guessed by whoever reaches the port.
MIN_TOKEN_LENGTH = 16
TOKEN_HELP = (
    "mutations are off: start `pixel serve` with PIXEL_API_TOKEN set in its environment, "
    "then send `Authorization: Bearer <that token>`"
)


@dataclass(frozen=True, slots=True)
class Settings:
    token: str | None = None
    max_image_bytes: int = mutations.DEFAULT_MAX_IMAGE_BYTES


def token_problem(token: str | None) -> str | None:
    """Why `token` may not guard the mutations (never quoting it); None when it may, or when there is none."""
    if token is None:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"PIXEL_API_TOKEN is {len(token)} characters; it must be at least {MIN_TOKEN_LENGTH} characters "
            "(e.g. `openssl rand -hex 16`), or unset to keep the mutations off"
        )
    if token != token.strip():
        return "PIXEL_API_TOKEN begins or ends with whitespace, which no Authorization header can carry"
    return None


async def get_service(request: Request) -> Service:
    return cast(Service, request.app.state.service)


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# auto_error off: a missing or non-Bearer header is answered by require_token, with the service's own error body.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="PIXEL_API_TOKEN of the running `pixel serve`; mutations are off (403) while it is unset",
)


async def require_token(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> None:
    """Mutations only with the service's token, compared in constant time."""
    if not settings.token:
        raise ServiceError(403, TOKEN_HELP)
    if credentials is None or not credentials.credentials:
        raise ServiceError(401, "this route needs `Authorization: Bearer <PIXEL_API_TOKEN>`")
    if not hmac.compare_digest(credentials.credentials.encode(), settings.token.encode()):
        raise ServiceError(403, "wrong token: the bearer token is not the service's PIXEL_API_TOKEN")
