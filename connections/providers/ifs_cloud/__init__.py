"""IFS Cloud: OData v4 projections behind IFS IAM (Keycloak) client credentials."""

from connections.providers.ifs_cloud.client import IfsCloud, Locked, StaleEtag

__all__ = ["IfsCloud", "Locked", "StaleEtag"]
