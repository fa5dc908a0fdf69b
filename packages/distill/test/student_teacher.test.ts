import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { saveTokenizer, taskSpaceOf } from "@polymoe/data";
import { extractTask } from "@polymoe/eval";
import { ModelConfig, type ModelConfigInput, Transformer } from "@polymoe/model";
import { describe, expect, it } from "vitest";

import {
  checkTeacher,
  DistillError,
  denseParameters,
  initStudentFromTeacher,
  loadTeacher,
  readTeacherInfo,
  studentConfig,
  teacherDigest,
} from "../src/index.js";
import { makeCorpus, makeTeacher, tempDir, tinyDense, tinyTaskMoe, tinyTokenMoe } from "./fixture.js";
import { uniq } from "./helpers.js";

/** The DistillError a function throws (fails the test if it throws nothing else). */
function thrown(f: () => unknown): DistillError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DistillError);
    expect((e as Error).message).not.toContain("\n");
    return e as DistillError;
  }
  throw new Error("expected a DistillError");
}

describe("the dense student", () => {
  it("is sized like an extracted subnetwork: each MoE layer a dense FFN of width k x expert dFF", () => {
    const s = studentConfig(ModelConfig.parse(tinyTokenMoe));
    expect(s.moe).toBeUndefined();
    expect(s.ffnWidths).toEqual({ encoder: { "1": 24 }, decoder: { "1": 24 } });
    expect(s.dFF).toBe(24);
    const residual = studentConfig(
      ModelConfig.parse({
        ...tinyDense,
        positions: "learned",
        moe: {
          decoder: { numExperts: 4, dFF: 10, layers: "all", residual: true, router: { type: "topk", k: 1 } },
        },
      }),
    );
    expect(residual.ffnWidths).toEqual({ decoder: { "0": 20, "1": 20 } });
    for (const c of [s, residual, ModelConfig.parse(tinyDense)]) {
      const m = new Transformer(c, { seed: 1, namespace: uniq("count") });
      expect(denseParameters(c)).toBe(m.numParameters());
      m.dispose();
    }
    expect(() => denseParameters(ModelConfig.parse(tinyTokenMoe))).toThrow(/has MoE layers/);
  });

  it("equals the architecture @polymoe/eval extracts from a TaskMoE for one task", async () => {
    const { tokenizer } = await makeCorpus(4);
    const config: ModelConfigInput = { ...tinyTaskMoe, vocabSize: tokenizer.vocabSize };
    const { model, dir } = makeTeacher(config, { taskSpace: taskSpaceOf(["en", "de", "fr"]) });
    await saveTokenizer(tokenizer, path.join(dir, "tokenizer.json"));
    const out = tempDir();
    const extracted = await extractTask(dir, "de", out);
    const saved = JSON.parse(readFileSync(path.join(out, "state.json"), "utf8")).model as ModelConfig;
    const student = studentConfig(model.config);
    expect(student.ffnWidths).toEqual(saved.ffnWidths);
    expect(student.moe).toEqual(saved.moe);
    expect(denseParameters(student)).toBe(extracted.parameters);
    model.dispose();
  });

  it("starts from the teacher's non-expert weights when asked; the FFNs at MoE layers keep their init", () => {
    const { model: teacher, dir } = makeTeacher(tinyTokenMoe);
    const student = new Transformer(studentConfig(teacher.config), { seed: 3, namespace: uniq("init") });
    const before = Float32Array.from(student.variables().get("decoder.layers.1.ffn.w1.w")!.dataSync());
    const r = initStudentFromTeacher(student, dir);
    expect(r.kept.sort()).toEqual(
      ["encoder", "decoder"]
        .flatMap((s) => ["w1.b", "w1.w", "w2.b", "w2.w"].map((p) => `${s}.layers.1.ffn.${p}`))
        .sort(),
    );
    expect(r.copied.length + r.kept.length).toBe(student.variables().size);
    for (const key of r.copied) {
      expect(Array.from(student.variables().get(key)!.dataSync()), key).toEqual(
        Array.from(teacher.variables().get(key)!.dataSync()),
      );
    }
    expect(r.copied).toContain("embed.tokens");
    expect(r.copied).toContain("decoder.layers.0.ffn.w1.w"); // a dense layer of the teacher
    expect(Array.from(student.variables().get("decoder.layers.1.ffn.w1.w")!.dataSync())).toEqual(
      Array.from(before),
    );
    expect(thrown(() => initStudentFromTeacher(teacher, dir)).code).toBe("NOT_DENSE");
    student.dispose();
    teacher.dispose();
  });
});

describe("the teacher", () => {
  it("missing checkpoint: one clear line naming the path and how to get a teacher", () => {
    const e = thrown(() => readTeacherInfo("/nonexistent/runs/quick-tokenmoe"));
    expect(e.code).toBe("TEACHER_MISSING");
    expect(e.message).toMatch(
      /^distill.teacher: \/nonexistent\/runs\/quick-tokenmoe is not a checkpoint .* train the teacher first/,
    );
  });

  it("is found from a run directory, loaded with its weights, frozen, and identified by a digest", () => {
    const { model, dir } = makeTeacher(tinyTokenMoe);
    const runDir = path.dirname(path.dirname(dir));
    const info = readTeacherInfo(runDir);
    expect(info.dir).toBe(path.join(runDir, "checkpoints", "checkpoint_last"));
    expect(info.model.vocabSize).toBe(24);
    const loaded = loadTeacher(info);
    for (const [k, v] of model.variables()) {
      const w = loaded.variables().get(k)!;
      expect(w.trainable).toBe(false);
      expect(Array.from(w.dataSync()), k).toEqual(Array.from(v.dataSync()));
    }
    expect(teacherDigest(info.dir)).toBe(teacherDigest(dir));
    const other = makeTeacher(tinyDense);
    expect(teacherDigest(other.dir)).not.toBe(teacherDigest(dir));
    for (const m of [model, loaded, other.model]) m.dispose();
  });

  it("vocabulary or task mismatch between teacher and student: one clear line each", async () => {
    const { corpus, tokenizer } = await makeCorpus(4);
    const tokFile = path.join(corpus.dir, "tokenizer.json");
    const student = {
      vocabSize: tokenizer.vocabSize,
      languages: corpus.languages,
      tokenizerFile: tokFile,
      corpus: corpus.dir,
    };
    const small = makeTeacher(tinyDense);
    const e1 = thrown(() => checkTeacher(readTeacherInfo(small.dir), student));
    expect(e1.code).toBe("VOCAB_MISMATCH");
    expect(e1.message).toMatch(
      new RegExp(`the teacher .* has 24 tokens, the student's corpus .* has ${tokenizer.vocabSize}`),
    );
    const { model, dir } = makeTeacher(
      { ...tinyDense, vocabSize: tokenizer.vocabSize },
      { taskSpace: taskSpaceOf(["en", "de"]) },
    );
    // Same size, other ids: a tokenizer whose first two merges' tokens swapped places.
    const json = JSON.parse(readFileSync(tokFile, "utf8"));
    const vocab = json.model.vocab as Record<string, number>;
    const [a, b] = Object.keys(vocab).slice(-2) as [string, string];
    [vocab[a], vocab[b]] = [vocab[b] as number, vocab[a] as number];
    writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(json));
    const e2 = thrown(() => checkTeacher(readTeacherInfo(dir), student));
    expect(e2.code).toBe("VOCAB_MISMATCH");
    expect(e2.message).toMatch(/tokenizer .* and the student's .* differ \(both \d+ tokens, other ids\)/);
    writeFileSync(path.join(dir, "tokenizer.json"), readFileSync(tokFile));
    const e3 = thrown(() => checkTeacher(readTeacherInfo(dir), student));
    expect(e3.code).toBe("TASK_SPACE_MISMATCH");
    expect(e3.message).toMatch(/trained on languages \[en, de\], the student's corpus .* has \[en, de, fr\]/);
    for (const m of [small.model, model]) m.dispose();
  });
});
