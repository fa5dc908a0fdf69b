import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { encodeSource } from "@polymoe/data";
import { decode } from "@polymoe/model";
import { Rng } from "@polymoe/routers";
import { SafetensorsFile, toModelBatch } from "@polymoe/train";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";

import {
  encodeEvalBatches,
  expertUsage,
  extractTask,
  loadModel,
  pruneExperts,
  translate,
  usageTotals,
} from "../src/index.js";
import { env, hybridConfig, makeCheckpoint, SENTENCES, space, tinyTokenizer } from "./fixture.js";

const out = () => mkdtempSync(path.join(tmpdir(), "polymoe-out-"));
let tok: Awaited<ReturnType<typeof tinyTokenizer>>;
beforeAll(async () => {
  tok = await tinyTokenizer();
});

describe("TaskMoE subnetwork extraction", () => {
  it("the extracted model equals the full model on its task: same tokens, logits within 1e-5, fewer parameters", async () => {
    const { dir, model: full } = await makeCheckpoint(hybridConfig(tok.vocabSize), tok);
    const res = await extractTask(dir, "de", out());
    expect(res.layers.map((l) => [l.layer, l.experts.length])).toEqual([["decoder.layers.1", 2]]);
    expect(res.parameters).toBeLessThan(res.sourceParameters);
    expect(res.bytes).toBeLessThan(res.sourceBytes);
    // Only the two chosen decoder experts of eight were read.
    const src = SafetensorsFile.open(path.join(dir, "model.safetensors"));
    const unchosen = src
      .names()
      .filter((nm) => {
        const m = /^decoder\.layers\.1\.ffn\.experts\.(\d+)\./.exec(nm);
        return m && !res.layers[0]!.experts.includes(Number(m[1]));
      })
      .reduce((b, nm) => b + 4 * src.shape(nm).reduce((x, y) => x * y, 1), 0);
    const total = src.names().reduce((b, nm) => b + 4 * src.shape(nm).reduce((x, y) => x * y, 1), 0);
    src.close();
    expect(unchosen).toBeGreaterThan(0);
    expect(res.bytesRead).toBeLessThanOrEqual(total - unchosen);

    const sub = await loadModel(res.dir, { namespace: "extracted" });
    expect(sub.model.moeLayers().map((l) => l.name)).toEqual(["encoder.layers.1"]); // token-routed encoder kept whole
    for (const backend of env.backends) {
      tf.setBackend(backend);
      const a = translate(full, tok, space, SENTENCES, "en", "de", { beamSize: 1, maxLenOffset: 6 });
      const b = translate(sub.model, tok, space, SENTENCES, "en", "de", { beamSize: 1, maxLenOffset: 6 });
      expect(b).toEqual(a);
      const pairs = [
        { pair: "en-de", srcLang: "en", tgtLang: "de", sources: SENTENCES, references: SENTENCES },
      ];
      const batch = toModelBatch(
        encodeEvalBatches(pairs, tok, space, { batchSize: 8, maxSourceLength: 32, maxTargetLength: 32 })[0]!,
      );
      const la = tf.tidy(() =>
        Float32Array.from(full.forward(batch, { training: false, rng: new Rng(1) }).logits.dataSync()),
      );
      const lb = tf.tidy(() =>
        Float32Array.from(sub.model.forward(batch, { training: false, rng: new Rng(1) }).logits.dataSync()),
      );
      let worst = 0;
      la.forEach((v, i) => {
        if (batch.tgtMask[Math.floor(i / tok.vocabSize)]) worst = Math.max(worst, Math.abs(v - lb[i]!));
      });
      expect(worst, backend).toBeLessThan(1e-5);
    }
    tf.setBackend(env.backends.at(-1)!);
    full.dispose();
    sub.model.dispose();
  });

  it("refuses unknown tasks and models without task routing, naming the valid choices", async () => {
    const { dir, model } = await makeCheckpoint(hybridConfig(tok.vocabSize), tok);
    await expect(extractTask(dir, "ja", out())).rejects.toThrow(
      /unknown task 'ja': target languages are en, de, fr/,
    );
    model.dispose();
    const cfg = hybridConfig(tok.vocabSize);
    const dense = await makeCheckpoint({ ...cfg, moe: { encoder: cfg.moe!.encoder! } }, tok);
    await expect(extractTask(dense.dir, "de", out())).rejects.toThrow(/has no task-routed MoE layers/);
    dense.model.dispose();
  });
});

describe("expert pruning", () => {
  it("keeping every expert changes nothing; keeping 2 keeps the most-used; keep < k is refused", async () => {
    const { dir, model } = await makeCheckpoint(hybridConfig(tok.vocabSize), tok);
    const sets = ["de", "fr"].map((l) => ({
      pair: `en-${l}`,
      srcLang: "en",
      tgtLang: l,
      sources: SENTENCES,
      references: SENTENCES,
    }));
    const usage = expertUsage(model, tok, space, sets);
    expect(usage.map((u) => u.layer)).toEqual(["encoder.layers.1", "decoder.layers.1"]);
    for (const u of usage)
      for (const row of u.fractions) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const totals = usageTotals(usage);
    const all = await pruneExperts(dir, 8, totals, out());
    const same = await loadModel(all.dir, { namespace: "prunedAll" });
    const src = encodeSource(tok, SENTENCES[0]!, "fr");
    const sb = {
      batch: 1,
      srcLen: src.length,
      src,
      srcMask: new Uint8Array(src.length).fill(1),
      taskIds: {
        "target-language": Int32Array.from([2]),
        "language-pair": Int32Array.from([2]),
        "task-type": Int32Array.from([0]),
      },
    };
    const opts = { bos: tok.bosId, eos: tok.eosId, maxLenOffset: 5 };
    expect(Array.from(decode(same.model, sb, opts)[0]!.tokens)).toEqual(
      Array.from(decode(model, sb, opts)[0]!.tokens),
    );
    const two = await pruneExperts(dir, 2, totals, out());
    const dec = totals.get("decoder.layers.1")!;
    const top2 = Array.from(dec.keys())
      .sort((a, b) => dec[b]! - dec[a]! || a - b)
      .slice(0, 2)
      .sort((a, b) => a - b);
    expect(two.layers.find((l) => l.layer === "decoder.layers.1")!.kept).toEqual(top2);
    const pruned = await loadModel(two.dir, { namespace: "pruned2" });
    expect(pruned.model.moeLayers().map((l) => l.layer.config.numExperts)).toEqual([2, 2]);
    expect(decode(pruned.model, sb, opts)[0]!.tokens.length).toBeGreaterThanOrEqual(0);
    await expect(pruneExperts(dir, 1, totals, out())).rejects.toThrow(
      /routes every token to k=2 experts; keep at least 2/,
    );
    for (const m of [model, same.model, pruned.model]) m.dispose();
  });
});
