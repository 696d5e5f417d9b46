"""The Django admin, with the site that lets only the Admin role in (web/security.py)."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class RoleAdminConfig(AdminConfig):
    default_site = "releaseboard.web.security.RoleAdminSite"
