"""A restricted unpickler for ``torch.load``, for a torch whose own
``weights_only`` loader cannot take our allow-list.

torch's ``weights_only=True`` loader takes extra globals as
``(object, 'module.name')`` entries of ``torch.serialization.safe_globals``
from torch 2.6 on. torch 2.5 has ``safe_globals`` but reads every entry's
``__module__`` (a tuple entry fails with ``'tuple' object has no attribute
'__module__'``), torch 2.4 has only the process-wide ``add_safe_globals``
and torch 2.0 - 2.3 neither. There :func:`restricted_pickle_module` gives
``torch.load(f, weights_only=False, pickle_module=...)`` an unpickler that
does what torch's does:

- a global (``GLOBAL`` / ``STACK_GLOBAL`` / extension codes / ``INST``) is
  resolved only from the allow-list: what torch's own ``weights_only``
  loader allows (tensors, parameters, storages, dtypes, ``torch.Size``,
  ``collections.OrderedDict``, ...; read from the running torch) plus the
  given extra globals. Nothing is imported, so no module of the file's
  choosing runs;
- ``REDUCE``, ``NEWOBJ`` / ``NEWOBJ_EX`` and ``INST`` / ``OBJ`` call only
  allow-listed objects, and ``BUILD`` sets state only on instances of
  allow-listed classes (never on a class, function or module, so a file
  cannot rewrite an allowed function's defaults or a class's methods).

Anything else raises :class:`RefusedGlobal` (a ``pickle.UnpicklingError``)
naming what the file asked for. It is pure Python (``pickle._Unpickler``):
the tensor data of a checkpoint is read by torch outside the pickle stream,
so the stream is small.
"""

import _compat_pickle
import collections
import pickle
import types

import torch

__all__ = [
    'RefusedGlobal',
    'restricted_pickle_module',
    'torch_allowed_globals',
]


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asks for an object outside the allow-list; ``what`` names
    it (``module.name``, or the refused call)."""

    def __init__(self, what, detail):
        super().__init__(f'Unsupported global: GLOBAL {what} {detail}')
        self.what = what


def torch_allowed_globals():
    """``{'module.name': object}`` that torch's ``weights_only`` loader
    allows by default, from the running torch (its
    ``_weights_only_unpickler._get_allowed_globals``, present since torch
    1.13), plus the few plain builtins newer torch versions allow."""
    allowed = {
        'collections.OrderedDict': collections.OrderedDict,
        'collections.Counter': collections.Counter,
        'torch.Size': torch.Size,
        'torch.nn.parameter.Parameter': torch.nn.Parameter,
        'torch._utils._rebuild_tensor_v2': torch._utils._rebuild_tensor_v2,
        'torch._utils._rebuild_parameter': torch._utils._rebuild_parameter,
        '_codecs.encode': __import__('_codecs').encode,  # bytes, protocol 2
        'builtins.set': set,
        'builtins.bytearray': bytearray,
        'builtins.complex': complex,
    }
    own = getattr(torch, '_weights_only_unpickler', None)
    own = getattr(own, '_get_allowed_globals', None)
    if own is not None:
        allowed.update(own())
    return allowed


def _name_of(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


def _is_class_or_code(obj):
    return isinstance(
        obj,
        (
            type,
            types.FunctionType,
            types.BuiltinFunctionType,
            types.MethodType,
            types.ModuleType,
        ),
    )


def restricted_pickle_module(extra_globals=()):
    """A ``pickle_module`` for ``torch.load(..., weights_only=False)`` that
    builds only what torch's ``weights_only`` loader allows plus
    ``extra_globals`` (objects, or ``(object, 'module.name')`` pairs as
    ``torch.serialization.safe_globals`` takes them from torch 2.6 on)."""
    allowed = torch_allowed_globals()
    for entry in extra_globals:
        obj, name = entry if isinstance(entry, tuple) else (entry, None)
        allowed[name or _name_of(obj)] = obj
    callables = {id(v): v for v in allowed.values()}
    classes = tuple(v for v in allowed.values() if isinstance(v, type))

    class Unpickler(pickle._Unpickler):
        dispatch = dict(pickle._Unpickler.dispatch)

        def find_class(self, module, name):
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            full = f'{module}.{name}'
            if full in allowed:
                return allowed[full]
            raise RefusedGlobal(
                full,
                'is not a tensor, a plain container or an allow-listed object',
            )

        @staticmethod
        def _check_call(func):
            if id(func) not in callables or callables[id(func)] is not func:
                raise RefusedGlobal(
                    f'a call of {func!r}',
                    'is not a call of an allow-listed object',
                )

        def load_reduce(self):
            args = self.stack.pop()
            self._check_call(self.stack[-1])
            self.stack[-1] = self.stack[-1](*args)

        dispatch[pickle.REDUCE[0]] = load_reduce

        def load_newobj(self):
            args = self.stack.pop()
            cls = self.stack.pop()
            self._check_call(cls)
            self.append(cls.__new__(cls, *args))

        dispatch[pickle.NEWOBJ[0]] = load_newobj

        def load_newobj_ex(self):
            kwargs = self.stack.pop()
            args = self.stack.pop()
            cls = self.stack.pop()
            self._check_call(cls)
            self.append(cls.__new__(cls, *args, **kwargs))

        dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

        def _instantiate(self, klass, args):  # INST and OBJ
            self._check_call(klass)
            return super()._instantiate(klass, args)

        def load_build(self):
            inst = self.stack[-2]  # under the state
            if _is_class_or_code(inst) or not isinstance(inst, classes):
                raise RefusedGlobal(
                    f'state set on {type(inst).__module__}.'
                    f'{type(inst).__qualname__}',
                    'is not state of an allow-listed class',
                )
            super().load_build()

        dispatch[pickle.BUILD[0]] = load_build

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    def loads(data, **kwargs):
        import io

        return load(io.BytesIO(data), **kwargs)

    return types.SimpleNamespace(
        __name__='lspt_mm.restricted_pickle',
        Unpickler=Unpickler,
        load=load,
        loads=loads,
        UnpicklingError=pickle.UnpicklingError,
        HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL,
    )
