"""Plan and execute the stages: decide run / resume / skip from each stage's key, then run the bodies."""
from __future__ import annotations

import fcntl
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bgeft.config.redaction import redact
from bgeft.console import capture
from bgeft.errors import UserError
from bgeft.pipeline.graph import Stage
from bgeft.pipeline.spec import Spec
from bgeft.pipeline.stages import registry
from bgeft.pipeline.stages.registry import KINDS
from bgeft.pipeline.state import HashCache, explain_change, now, read_manifest, stage_key, write_manifest


@dataclass
class Decision:
    action: str   # run | resume | skip
    reason: str


class Context:
    """What a stage body sees: the spec, where its inputs are, and a place to print."""

    def __init__(self, spec: Spec, stages: list[Stage], out):
        self.spec = spec
        self.by_name = {st.name: st for st in stages}
        self.out = out

    def path(self, stage: Stage, role: str) -> str:
        kind, value = stage.refs[role]
        if kind == "stage":
            return str(self.by_name[value].output)
        from bgeft.models.resolve import materialise

        return materialise(value)

    def has(self, stage: Stage, role: str) -> bool:
        return role in stage.refs

    def log(self, message: str) -> None:
        print(f"    {message}", file=self.out, flush=True)

    def summary(self, lines: list[str]) -> None:
        """A verb's summary: its first line and warnings on the console, the rest in the stage's log."""
        for i, line in enumerate(lines):
            if i == 0 or line.startswith("warning"):
                self.log(line)
            else:
                print(line, file=sys.stderr, flush=True)   # fd 2 is the stage's log (bgeft.console.capture)


class Runner:
    def __init__(self, spec: Spec, stages: list[Stage], from_index: int | None = None, out=None):
        self.spec, self.stages, self.from_index = spec, stages, from_index
        self.out = out or sys.stdout
        self.cache = HashCache(spec.work_dir / ".hash_cache.json" if spec.work_dir.is_dir() else None)
        self.ctx = Context(spec, stages, self.out)
        self.order = {st.name: i for i, st in enumerate(stages)}

    def _inputs(self, stage: Stage, pending: set[str]) -> tuple[dict[str, str] | None, str]:
        inputs: dict[str, str] = {}
        waiting = [v for k, v in stage.refs.values() if k == "stage" and v in pending]
        if waiting:  # name the nearest upstream stage that will run
            return None, f"after {max(waiting, key=self.order.get)} re-runs"
        for role, (kind, value) in sorted(stage.refs.items()):
            if kind == "stage":
                manifest = read_manifest(self.ctx.by_name[value].dir) or {}
                inputs[role] = manifest.get("output_sha256", "missing")
            else:
                try:
                    inputs[role] = self.cache.reference(value)
                except OSError as exc:
                    raise UserError(f"stage {stage.name}: cannot read {role} {value}: {exc}") from None
        return inputs, ""

    def decide(self, i: int, stage: Stage, pending: set[str]) -> tuple[Decision, str | None, dict | None]:
        inputs, why = self._inputs(stage, pending)
        if self.from_index is not None and i >= self.from_index:
            return Decision("run", f"--from {self.stages[self.from_index].name}"), None, inputs
        if inputs is None:
            return Decision("run", why), None, None
        key = stage_key(stage.kind, redact(stage.params), inputs)
        old = read_manifest(stage.dir)
        if old is None:
            return Decision("run", "not run yet"), key, inputs
        if old.get("key") == key and old.get("status") == "done":
            return Decision("skip", "up to date"), key, inputs
        if old.get("key") == key:
            how = KINDS[stage.kind].resumable or "restarting"
            return Decision("resume", f"interrupted or failed, {how}"), key, inputs
        return Decision("run", explain_change(old, redact(stage.params), inputs)), key, inputs

    def plan(self) -> list[tuple[Stage, Decision]]:
        rows, pending = [], set()
        for i, stage in enumerate(self.stages):
            decision, _, _ = self.decide(i, stage, pending)
            if decision.action != "skip":
                pending.add(stage.name)
            rows.append((stage, decision))
        return rows

    def print_plan(self, rows) -> None:
        width = max(len(st.dir.name) for st, _ in rows)
        for st, d in rows:
            print(f"  {st.dir.name:<{width}}  {d.action:<6}  {d.reason}", file=self.out)
        current = {st.dir.name for st, _ in rows}
        stale = sorted(p.name for p in self.spec.work_dir.glob("[0-9][0-9]-*") if p.is_dir() and p.name not in current)
        if stale:
            print(f"  not part of this pipeline any more (left as they are): {', '.join(stale)}", file=self.out)

    def run(self, bodies: dict | None = None) -> list[dict]:
        from bgeft.pipeline.stages.reproduce import environment, record_run

        self.spec.work_dir.mkdir(parents=True, exist_ok=True)
        self.environment = environment()
        self.cache.path = self.spec.work_dir / ".hash_cache.json"
        lock = (self.spec.work_dir / ".pipeline.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"{self.spec.work_dir}: another bgeft pipeline is running there; wait for it "
                            "or use another work_dir") from None
        try:
            record_run(self.spec, self.environment)   # after the lock: one writer per work_dir
            return self._run(bodies if bodies is not None else registry.bodies())
        finally:
            self.cache.save()
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def _run(self, bodies: dict) -> list[dict]:
        done = []
        total = len(self.stages)
        for i, stage in enumerate(self.stages):
            decision, key, inputs = self.decide(i, stage, set())
            tag = f"[{i + 1}/{total}] {stage.name}"
            if decision.action == "skip":
                print(f"{tag}: skip ({decision.reason})", file=self.out, flush=True)
                done.append(read_manifest(stage.dir))
                continue
            if key is None:
                key = stage_key(stage.kind, redact(stage.params), inputs)
            print(f"{tag}: {decision.action} ({decision.reason})", file=self.out, flush=True)
            old = read_manifest(stage.dir) or {}
            resume = decision.action == "resume"
            resumable = KINDS[stage.kind].resumable is not None
            if not resume or not resumable:
                self._wipe(stage.dir)
            manifest = {"stage": stage.name, "kind": stage.kind, "round": stage.round, "key": key,
                        "status": "running", "reason": decision.reason, "params": redact(stage.params),
                        "inputs": inputs, "refs": {k: list(v) for k, v in stage.refs.items()},
                        "started_at": now(), "attempts": (old.get("attempts", 0) + 1) if resume else 1,
                        "environment": self.environment}
            write_manifest(stage.dir, manifest)
            self.cache.save()
            t0 = time.perf_counter()
            with capture(stage.dir / "stage.log"):   # third-party output: the stage's log (bgeft.console)
                summary = bodies[stage.kind](self.ctx, stage, resume and resumable)
            manifest.update(status="done", finished_at=now(), seconds=round(time.perf_counter() - t0, 2),
                            summary=summary or {}, output_sha256=self.cache.tree(stage.output))
            write_manifest(stage.dir, manifest)
            print(f"{tag}: done in {manifest['seconds']:.1f} s", file=self.out, flush=True)
            done.append(manifest)
        return done

    def _wipe(self, stage_dir: Path) -> None:
        if stage_dir.exists():
            if stage_dir.parent != self.spec.work_dir:
                raise UserError(f"refusing to delete {stage_dir}: not a stage directory of {self.spec.work_dir}")
            shutil.rmtree(stage_dir)
        stage_dir.mkdir(parents=True)

