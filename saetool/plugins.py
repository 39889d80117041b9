"""Loading plugins (built-in and third-party) and collecting what they register."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator

import pluggy

from saetool import hookspecs
from saetool.console import warn
from saetool.errors import PluginError

ENTRY_POINT_GROUP = "saetool"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "saetool.builtins.commands",
    "saetool.builtins.models",
    "saetool.builtins.corpora",
    "saetool.builtins.artifacts",
    "saetool.builtins.sae",
    "saetool.builtins.sae_formats",
    "saetool.builtins.steer",
    "saetool.builtins.interpret",
    "saetool.builtins.labelers",
    "saetool.builtins.evaluate",
    "saetool.builtins.analysis",
    "saetool.builtins.pathways",
    "saetool.builtins.bench",
    "saetool.builtins.track",
)

#: category name -> hook name; the order is the order ``saetool plugins`` shows.
CATEGORIES: dict[str, str] = {
    "model_backends": "register_model_backends",
    "models": "register_models",
    "sae_architectures": "register_sae_architectures",
    "sae_readers": "register_sae_readers",
    "exporters": "register_exporters",
    "feature_labelers": "register_feature_labelers",
    "position_labelers": "register_position_labelers",
    "scorers": "register_scorers",
    "sae_metrics": "register_sae_metrics",
    "bench_evals": "register_bench_evals",
    "probe_datasets": "register_probe_datasets",
    "completion_metrics": "register_completion_metrics",
    "interventions": "register_interventions",
    "corpus_sources": "register_corpus_sources",
    "artifact_kinds": "register_artifact_kinds",
    "commands": "register_commands",
}


@dataclass(frozen=True)
class DeprecatedHook:
    """A hook that served two interfaces: each object it registers goes to the
    category its ``attribute`` names (``default`` when it has none)."""

    attribute: str
    default: str
    routes: dict[str, str]  # attribute value -> category

    def replacements(self) -> str:
        return " or ".join(CATEGORIES[c] for c in self.routes.values())


#: Deprecated hooks still accepted from plugins, with a warning naming the new ones.
DEPRECATED_HOOKS: dict[str, DeprecatedHook] = {
    "register_metrics": DeprecatedHook("scope", "completions", {"completions": "completion_metrics", "sae": "sae_metrics"}),
    "register_labelers": DeprecatedHook("target", "features", {"features": "feature_labelers", "positions": "position_labelers"}),
}

#: The deprecated firstresult ``load_sae`` hook: adapted into an SAE reader.
LOAD_SAE_HOOK = "load_sae"


@dataclass
class Registration:
    """One thing a plugin registered."""

    category: str
    name: str
    obj: Any
    plugin: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        doc = getattr(self.obj, "description", None) or getattr(self.obj, "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


@dataclass
class PluginInfo:
    name: str
    builtin: bool
    version: str | None = None
    error: str | None = None


class PluginHost:
    """Owns the pluggy manager and a per-category cache of registrations.

    Hooks are called lazily, one category at a time, so asking for commands
    (``saetool --help``) never imports what model backends need. A plugin that
    raises while registering is named in a warning and skipped; the others
    still register.
    """

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("saetool")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registrations: dict[str, dict[str, Registration]] = {}
        self._warned: set[tuple[str, str]] = set()
        for module_name in BUILTIN_PLUGINS:
            self.pm.register(import_module(module_name), name=module_name)
            self.plugins[module_name] = PluginInfo(module_name, builtin=True)
        if load_entry_points:
            self._load_entry_points()

    # -- loading -----------------------------------------------------------
    def _load_entry_points(self) -> None:
        allowed = _allowed_plugins()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = getattr(dist, "name", None)
            if allowed is not None and ep.name not in allowed and dist_name not in allowed:
                continue
            info = PluginInfo(ep.name, builtin=False, version=getattr(dist, "version", None))
            self.plugins[ep.name] = info
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except Exception as exc:  # a broken plugin must not break saetool
                info.error = f"{type(exc).__name__}: {exc}"
                warn(f"plugin {ep.name!r} failed to load and was skipped ({info.error})")
        if allowed:
            missing = sorted(allowed - set(self.plugins))
            if missing:
                warn(
                    f"SAETOOL_LOAD_PLUGINS names {', '.join(missing)}, which no installed "
                    "package provides; check the names with `saetool plugins`"
                )

    def register_plugin(self, plugin: Any, name: str) -> None:
        """Register an in-process plugin object (for notebooks and tests)."""
        self.pm.register(plugin, name=name)
        self.plugins[name] = PluginInfo(name, builtin=False)
        self._registrations.clear()

    # -- collecting --------------------------------------------------------
    def collect(self, category: str) -> dict[str, Registration]:
        """Everything registered in ``category``, by name (cached)."""
        if category not in CATEGORIES:
            raise KeyError(category)
        if category not in self._registrations:
            self._registrations[category] = self._call(category)
        return self._registrations[category]

    def _call(self, category: str) -> dict[str, Registration]:
        found: dict[str, Registration] = {}
        # get_hookimpls() is in registration order (pluggy *calls* them in reverse):
        # built-ins come first, so a third-party duplicate is the one refused.
        for impl in getattr(self.pm.hook, CATEGORIES[category]).get_hookimpls():
            self._register_from(impl, category, found)
        for hook, spec in DEPRECATED_HOOKS.items():
            if category in spec.routes.values():
                for impl in getattr(self.pm.hook, hook).get_hookimpls():
                    self._deprecated(impl.plugin_name, hook, spec.replacements())
                    self._register_from(impl, category, found, route=spec)
        if category == "sae_readers":
            for impl in getattr(self.pm.hook, LOAD_SAE_HOOK).get_hookimpls():
                self._deprecated(impl.plugin_name, LOAD_SAE_HOOK, CATEGORIES["sae_readers"])
                reader = LoadSAEHookReader(impl.function, impl.plugin_name)
                self._keep(Registration(category, reader.name, reader, impl.plugin_name), found)
        return found

    def _register_from(self, impl: Any, category: str, found: dict[str, Registration], route: DeprecatedHook | None = None) -> None:
        """Call one hook implementation; with ``route`` (a deprecated hook) keep only
        what belongs in ``category``."""
        plugin_name = impl.plugin_name
        pending: list[Registration] = []

        def register(obj: Any, name: str | None = None, **options: Any) -> None:
            reg_name = name or getattr(obj, "name", None) or getattr(obj, "__name__", None)
            if not reg_name:
                raise PluginError(f"plugin {plugin_name!r} registered a {category} entry without a name")
            if route is not None:
                value = getattr(obj, route.attribute, route.default)
                if value not in route.routes:
                    warn(f"plugin {plugin_name!r} registered {reg_name!r} with {route.attribute}={value!r}, which is none of {', '.join(route.routes)}; skipped")
                    return
                if route.routes[value] != category:
                    return
            if category == "commands":
                reg_name = str(reg_name).replace("_", "-")
            pending.append(Registration(category, str(reg_name), obj, plugin_name, options))

        try:
            impl.function(register=register)
        except Exception as exc:
            warn(
                f"plugin {plugin_name!r} raised while registering {category} and was "
                f"skipped for them ({type(exc).__name__}: {exc})"
            )
            info = self.plugins.get(plugin_name)
            if info is not None and info.error is None:
                info.error = f"{type(exc).__name__}: {exc}"
            return
        for reg in pending:
            self._keep(reg, found)

    @staticmethod
    def _keep(reg: Registration, found: dict[str, Registration]) -> None:
        if reg.name in found:
            warn(
                f"plugin {reg.plugin!r} registered {reg.category} {reg.name!r}, which "
                f"{found[reg.name].plugin!r} already provides; keeping the first"
            )
            return
        found[reg.name] = reg

    def _deprecated(self, plugin: str, hook: str, replacement: str) -> None:
        """Warn once per plugin and deprecated hook."""
        if (plugin, hook) not in self._warned:
            self._warned.add((plugin, hook))
            warn(f"plugin {plugin!r} implements the deprecated hook {hook}; it still works, but implement {replacement} instead (docs/plugins.md)")

    def get(self, category: str, name: str) -> Any:
        """The object registered as ``name``, or a one-line error listing the choices."""
        regs = self.collect(category)
        if name not in regs:
            choices = ", ".join(sorted(regs)) or "none"
            label = category.replace("_", " ").rstrip("s")
            raise PluginError(f"unknown {label} {name!r}", hint=f"choose one of: {choices}")
        return regs[name].obj

    def all_registrations(self) -> Iterator[Registration]:
        for category in CATEGORIES:
            yield from self.collect(category).values()

    def is_builtin(self, plugin: str) -> bool:
        info = self.plugins.get(plugin)
        return info is not None and info.builtin


class LoadSAEHookReader:
    """An SAE reader made from a plugin's deprecated ``load_sae(path, device)`` hook:
    it is asked for every path, and its ``None`` passes the path on."""

    description = "plugin format (deprecated load_sae hook)"

    def __init__(self, function: Callable[..., Any], plugin: str) -> None:
        self.function, self.name = function, f"{plugin}:load_sae"

    def can_read(self, path: Any) -> bool:
        return True

    def read(self, path: Any, device: str) -> Any:
        return self.function(path=str(path), device=device)


def _allowed_plugins() -> set[str] | None:
    raw = os.environ.get("SAETOOL_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


_host: PluginHost | None = None


def host() -> PluginHost:
    """The process-wide plugin host (created on first use)."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def reset_host() -> None:
    """Forget the loaded plugins (tests use this after changing the environment)."""
    global _host
    _host = None
