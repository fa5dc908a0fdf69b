// Finding, checking and loading a teacher checkpoint.
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, readSync } from "node:fs";
import path from "node:path";

import { resolveCheckpointDir } from "@polymoe/eval";
import { type ModelConfig, Transformer } from "@polymoe/model";
import { type CheckpointState, loadCheckpoint } from "@polymoe/train";

import { DistillError } from "./errors.js";

/** A teacher checkpoint's metadata (no weights read). */
export interface TeacherInfo {
  /** The checkpoint directory. */
  dir: string;
  /** Its model config (architecture). */
  model: ModelConfig;
  step: number;
  /** Languages of its task space (English first), when known. */
  languages?: readonly string[];
  /** Its tokenizer file (beside the checkpoint, else its corpus's), when still there. */
  tokenizerFile?: string;
}

/**
 * Reads the teacher's state.json. `teacher` is a checkpoint directory or a run directory
 * (checkpoint_best, else checkpoint_last). TEACHER_MISSING says how to get one.
 */
export function readTeacherInfo(teacher: string, field = "distill.teacher"): TeacherInfo {
  let dir: string;
  try {
    dir = resolveCheckpointDir(teacher);
  } catch {
    throw new DistillError(
      "TEACHER_MISSING",
      `${field}: ${teacher} is not a checkpoint (no state.json) nor a run directory with checkpoints/checkpoint_best or checkpoint_last; train the teacher first (e.g. polymoe train --config quick-tokenmoe) or fix the path`,
    );
  }
  if (!existsSync(path.join(dir, "model.safetensors"))) {
    throw new DistillError(
      "TEACHER_MISSING",
      `${field}: ${dir} has no model.safetensors; the checkpoint is incomplete`,
    );
  }
  let state: CheckpointState & { taskSpace?: { languages: string[] } };
  try {
    state = JSON.parse(readFileSync(path.join(dir, "state.json"), "utf8"));
  } catch (e) {
    throw new DistillError(
      "TEACHER_MISSING",
      `${field}: ${dir}/state.json is not valid JSON (${(e as Error).message})`,
    );
  }
  const model = state.model as ModelConfig | undefined;
  if (!model || typeof model.vocabSize !== "number") {
    throw new DistillError(
      "TEACHER_MISSING",
      `${field}: ${dir}/state.json has no model config; is it a PolyMoE checkpoint?`,
    );
  }
  const corpusDir = (state.config as { data?: { corpus?: string } } | undefined)?.data?.corpus;
  let corpus: { languages?: string[]; tokenizer?: { file?: string } } | undefined;
  if (corpusDir && existsSync(path.join(corpusDir, "manifest.json"))) {
    try {
      corpus = JSON.parse(readFileSync(path.join(corpusDir, "manifest.json"), "utf8"));
    } catch {
      corpus = undefined;
    }
  }
  const languages = state.taskSpace?.languages ?? corpus?.languages;
  const local = path.join(dir, "tokenizer.json");
  const tokenizerFile = existsSync(local)
    ? local
    : corpusDir && corpus?.tokenizer?.file && existsSync(path.join(corpusDir, corpus.tokenizer.file))
      ? path.join(corpusDir, corpus.tokenizer.file)
      : undefined;
  return {
    dir,
    model,
    step: state.step,
    ...(languages ? { languages } : {}),
    ...(tokenizerFile ? { tokenizerFile } : {}),
  };
}

/** What the student side looks like, for the compatibility check. */
export interface StudentSide {
  vocabSize: number;
  /** The student's corpus languages (English first). */
  languages: readonly string[];
  /** The student's tokenizer file. */
  tokenizerFile: string;
  /** Names the student's corpus in messages. */
  corpus: string;
}

const fileHash = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

/**
 * Refuses a teacher that speaks another vocabulary (VOCAB_MISMATCH: other size, or a
 * different tokenizer file) or numbers tasks differently (TASK_SPACE_MISMATCH).
 */
export function checkTeacher(info: TeacherInfo, student: StudentSide): void {
  if (info.model.vocabSize !== student.vocabSize) {
    throw new DistillError(
      "VOCAB_MISMATCH",
      `vocabulary mismatch: the teacher ${info.dir} has ${info.model.vocabSize} tokens, the student's corpus ${student.corpus} has ${student.vocabSize}; distillation needs one tokenizer: train the student on the teacher's corpus`,
    );
  }
  if (info.tokenizerFile && fileHash(info.tokenizerFile) !== fileHash(student.tokenizerFile)) {
    throw new DistillError(
      "VOCAB_MISMATCH",
      `vocabulary mismatch: the teacher's tokenizer ${info.tokenizerFile} and the student's ${student.tokenizerFile} differ (both ${student.vocabSize} tokens, other ids); train the student on the teacher's corpus`,
    );
  }
  if (info.languages && info.languages.join() !== student.languages.join()) {
    throw new DistillError(
      "TASK_SPACE_MISMATCH",
      `task mismatch: the teacher ${info.dir} was trained on languages [${info.languages.join(", ")}], the student's corpus ${student.corpus} has [${student.languages.join(", ")}]; task ids would name other languages: use the teacher's corpus`,
    );
  }
}

/** SHA-256 of the teacher's weights file (identifies the teacher in caches and corpora). */
export function teacherDigest(dir: string): string {
  const file = path.join(dir, "model.safetensors");
  const h = createHash("sha256");
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex").slice(0, 32);
}

let loaded = 0;

/**
 * Builds the teacher (non-trainable variables under a fresh namespace) and loads its
 * weights. The caller disposes it.
 */
export function loadTeacher(info: TeacherInfo): Transformer {
  const model = new Transformer(info.model, {
    seed: 1,
    namespace: `teacher${loaded++}`,
    trainable: false,
  });
  try {
    loadCheckpoint(info.dir, model, null);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
