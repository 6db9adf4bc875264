"""A small Amazon States Language walker for the offline tests of the synthesised state machines.

It reads the definition from the template (CloudFormation tokens become ``ref:<logical id>``
strings) and runs it state by state: Pass, Task, Choice, Wait (not waited), Succeed, Fail, with
Parameters (``.$`` paths and ``States.Format``), ResultSelector, ResultPath and Catch as the
service applies them. Tasks go to the ``services`` the test gives, by resource ARN suffix
(``lambda:invoke``, ``sns:publish``, ``sagemaker:createTrainingJob.sync``,
``aws-sdk:cloudformation:updateStack``, ...); a service raises :class:`TaskError` to fail a task.
What it leaves out (retries' timing, Map states, JSONata) the pipeline does not use.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TaskError(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


def token_text(part: Any) -> str:
    """A CloudFormation token inside the definition, as a readable placeholder."""
    if isinstance(part, str):
        return part
    if "Fn::GetAtt" in part:
        return f"ref:{part['Fn::GetAtt'][0]}"
    if "Ref" in part:
        return f"ref:{part['Ref']}"
    return "ref:?"


def definition_of(machine: dict[str, Any]) -> dict[str, Any]:
    body = machine["Properties"]["DefinitionString"]
    text = body if isinstance(body, str) else "".join(map(token_text, body["Fn::Join"][1]))
    return json.loads(text)  # type: ignore[no-any-return]


CONTEXT: dict[str, Any] = {}  # the run's context object ($$), set by run()


def path_get(data: Any, path: str) -> Any:
    if path.startswith("$$"):
        data, path = CONTEXT, path[1:]
    if path == "$":
        return data
    value = data
    for name, index in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path[1:]):
        value = value[name] if name else value[int(index)]
    return value


def path_set(data: Any, path: str | None, value: Any) -> Any:
    if path is None:  # ResultPath null: the input goes on unchanged
        return data
    if path == "$":
        return value
    data = copy.deepcopy(data)
    names = re.findall(r"\.([A-Za-z0-9_]+)", path[1:])
    target = data
    for name in names[:-1]:
        target = target.setdefault(name, {})
    target[names[-1]] = value
    return data


def intrinsic(expression: str, data: Any) -> Any:
    """States.Format('text {} ...', $.path, ...): the one intrinsic the pipeline uses."""
    match = re.fullmatch(r"States\.Format\('((?:\\.|[^'\\])*)'((?:,\s*\$[^,]*)*)\)", expression)
    if not match:
        raise NotImplementedError(expression)
    text = re.sub(r"\\(.)", r"\1", match.group(1))
    args = [path_get(data, a.strip()) for a in match.group(2).split(",")[1:]]
    pieces = text.split("{}")
    return "".join(p + (str(args[i]) if i < len(args) else "") for i, p in enumerate(pieces))


def fill(template: Any, data: Any) -> Any:
    """Parameters / ResultSelector: keys ending in .$ take a path's value or an intrinsic."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = (
                    intrinsic(value, data) if value.startswith("States.") else path_get(data, value)
                )
            else:
                out[key] = fill(value, data)
        return out
    if isinstance(template, list):
        return [fill(v, data) for v in template]
    return template


def choose(rule: dict[str, Any], data: Any) -> bool:
    if "Or" in rule:
        return any(choose(r, data) for r in rule["Or"])
    if "And" in rule:
        return all(choose(r, data) for r in rule["And"])
    if "Not" in rule:
        return not choose(rule["Not"], data)
    value = path_get(data, rule["Variable"])
    for test, expected in rule.items():
        if test == "BooleanEquals" or test == "StringEquals" or test == "NumericEquals":
            return bool(value == expected)
        if test == "NumericGreaterThanEquals":
            return bool(value >= expected)
    raise NotImplementedError(rule)


@dataclass
class Run:
    status: str  # SUCCEEDED or FAILED
    end: str  # the last state's name
    output: Any
    path: list[str] = field(default_factory=list)
    error: str | None = None


def run(
    definition: dict[str, Any],
    services: dict[str, Callable[[dict[str, Any]], Any]],
    given: Any,
    *,
    context: dict[str, Any] | None = None,
    max_steps: int = 200,
) -> Run:
    states, name, data = definition["States"], definition["StartAt"], given
    CONTEXT.clear()
    CONTEXT.update(context or {})
    visited: list[str] = []
    for _ in range(max_steps):
        visited.append(name)
        state = states[name]
        kind = state["Type"]
        if kind == "Succeed":
            return Run("SUCCEEDED", name, data, visited)
        if kind == "Fail":
            return Run("FAILED", name, data, visited, state.get("Error"))
        if kind == "Choice":
            name = next(
                (r["Next"] for r in state["Choices"] if choose(r, data)), state.get("Default")
            )
            if name is None:
                return Run("FAILED", visited[-1], data, visited, "States.NoChoiceMatched")
            continue
        if kind == "Wait":
            name = state["Next"]
            continue
        if kind == "Pass":
            result = fill(state["Parameters"], data) if "Parameters" in state else data
            data = path_set(data, state.get("ResultPath", "$"), result)
        elif kind == "Task":
            arguments = fill(state["Parameters"], data) if "Parameters" in state else data
            resource = state["Resource"].split(":::", 1)[-1]
            service = services.get(resource) or next(
                (f for key, f in services.items() if resource.startswith(key)), None
            )
            if service is None:
                raise KeyError(f"{name}: no service given for {resource}")
            try:
                result = service(arguments)
            except TaskError as exc:
                catcher = next(
                    (
                        c
                        for c in state.get("Catch", [])
                        if "States.ALL" in c["ErrorEquals"] or exc.error in c["ErrorEquals"]
                    ),
                    None,
                )
                if catcher is None:
                    return Run("FAILED", name, data, visited, exc.error)
                error = {"Error": exc.error, "Cause": exc.cause}
                data = path_set(data, catcher.get("ResultPath", "$"), error)
                name = catcher["Next"]
                continue
            if "ResultSelector" in state:
                result = fill(state["ResultSelector"], result)
            data = path_set(data, state.get("ResultPath", "$"), result)
        else:
            raise NotImplementedError(kind)
        if state.get("End"):
            return Run("SUCCEEDED", name, data, visited)
        name = state["Next"]
    raise RuntimeError(f"no end after {max_steps} states: {visited[-10:]}")
