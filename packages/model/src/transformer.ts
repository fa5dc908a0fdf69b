// Pre-LayerNorm Transformer encoder-decoder with MoE FFNs on chosen layers.
// Axis legend: B sentences, S source length, T target length, M model width,
// V vocabulary. Activations are flattened to [B*S, M] / [B*T, M] rows.
import { gelu } from "@polymoe/kernels";
import type { Rng, RouteContext, RoutingMetrics } from "@polymoe/routers";
import { parseConfig } from "@polymoe/schema";
import {
  add,
  addN,
  clone,
  gather,
  matMul,
  mul,
  randomNormal,
  relu,
  reshape,
  type Scalar,
  scalar,
  slice,
  type Tensor,
  type Tensor2D,
  type Tensor4D,
  type TensorContainer,
  tensor1d,
  tensor2d,
  tensor4d,
  tidy,
  transpose,
  type Variable,
} from "@tensorflow/tfjs-core";

import { MultiHeadAttention, type RowKV } from "./attention.js";
import {
  ModelConfig,
  type ModelConfigInput,
  type MoePlacement,
  moeLayerIndices,
  type TaskKey,
} from "./config.js";
import { ModelError } from "./errors.js";
import { applyLinear, applyNorm, drop, type Linear, linear, type Norm, norm, ParamStore } from "./layers.js";
import type { ExpertExchange, ExpertExchangeFactory, ExpertSlicing } from "./moe/exchange.js";
import { MoeLayer } from "./moe/moe_layer.js";
import type { ExpertPager } from "./moe/pager.js";

/** One batch of token ids, row-major, with padding masks and per-sentence task ids. */
export interface ModelBatch {
  /** B */
  batch: number;
  /** S */
  srcLen: number;
  /** T */
  tgtLen: number;
  /** <int32>[B*S] source tokens (language tag first, as the data pipeline writes them). */
  src: Int32Array;
  /** <int32>[B*T] decoder input (bos / target-language tag, then the target shifted right). */
  tgtIn: Int32Array;
  /** <uint8>[B*S] 1 = real token, 0 = padding. */
  srcMask: Uint8Array;
  /** <uint8>[B*T] */
  tgtMask: Uint8Array;
  /** Per-sentence task ids [B] by kind; task-level routers need the kind they read. */
  taskIds: Partial<Record<TaskKey, Int32Array>>;
}

export interface ForwardContext {
  training: boolean;
  rng: Rng;
  step?: number;
  /**
   * Called with the wall time of each forward section ("embed", "attention",
   * "ffn", "moe", "output"). Meaningful on synchronous backends (native, cpu),
   * where ops run when called; benchmarks use it for time breakdowns.
   */
  timer?: (section: "embed" | "attention" | "ffn" | "moe" | "output", ms: number) => void;
}

/** Runs f, reporting its wall time to ctx.timer when there is one. */
function timed<T>(
  ctx: ForwardContext,
  section: Parameters<NonNullable<ForwardContext["timer"]>>[0],
  f: () => T,
): T {
  if (!ctx.timer) return f();
  const t0 = performance.now();
  const out = f();
  ctx.timer(section, performance.now() - t0);
  return out;
}

/** Routing statistics of one MoE layer in one forward pass. */
export interface MoeReport {
  layer: string;
  metrics: RoutingMetrics;
}

export interface ForwardOutput {
  /** <float32>[B*T, V]. */
  logits: Tensor2D;
  /** Sum over MoE layers of the load-balancing losses (0 for dense models). */
  auxLoss: Scalar;
  /** Sum over MoE layers of the router z-losses. */
  zLoss: Scalar;
  moe: MoeReport[];
}

/** The encoded source, ready for decoding. */
export interface EncoderMemory {
  B: number;
  S: number;
  /** <float32>[B*S, M] after the encoder's final LayerNorm. */
  out: Tensor2D;
  /** <float32>[B, 1, 1, S] additive source-padding mask. */
  mask: Tensor4D;
  /** Cross-attention keys/values per decoder layer, <float32>[B, S, M] each. */
  crossKV: RowKV[];
  /**
   * <float32>[M, V]: the output projection (the tied embedding, transposed)
   * laid out for decoding's few-row products, made once per batch: [R, M] x
   * [M, V] runs ~2x faster than against the [V, M] embedding transposed on the
   * fly (docs/benchmarks.md, bench:decode).
   */
  outputWeight: Tensor2D;
  taskIds: Partial<Record<TaskKey, Int32Array>>;
}

/**
 * Incremental decoder state: self-attention caches per layer ([B, rows, M],
 * rows [0, position) valid), the next position, and the most positions the
 * caches may hold. On the native backend a step writes the caches in place: a
 * state's caches belong to it alone (reorder copies them).
 */
export interface DecoderState {
  position: number;
  capacity: number;
  self: (RowKV | null)[];
}

/** Where a rank's share of one expert parameter sits in the layer's full tensor. */
export interface ExpertLayout {
  /** Global id of the first local expert. */
  firstExpert: number;
  localExperts: number;
  /** Experts of the layer over all ranks. */
  numExperts: number;
  /**
   * Tensor slicing: this rank holds part `rank` of `size` equal parts along
   * `axis` of each per-expert tensor (the shape without the expert axis).
   */
  slice?: { axis: number; rank: number; size: number };
}

export interface TransformerInit {
  seed: number;
  /** Prefix of tfjs variable names (unique per model in a process, e.g. "teacher"). */
  namespace?: string;
  trainable?: boolean;
  /** Expert parallelism hook for every MoE layer, or a factory making one per layer. */
  exchange?: ExpertExchange | ExpertExchangeFactory;
  /** Tensor slicing of every MoE layer's expert FFNs. */
  slicing?: ExpertSlicing;
  /**
   * Paged experts (ZeRO-Infinity for MoE): every MoE layer keeps its expert
   * parameters in this pager instead of tfjs variables, and fetches only the
   * experts each batch routes to (one process; no exchange or slicing).
   */
  pager?: ExpertPager;
}

interface DenseFFN {
  kind: "dense";
  w1: Linear;
  w2: Linear;
}

interface MoeFFN {
  kind: "moe";
  layer: MoeLayer;
  taskKey: TaskKey;
}

type FFN = DenseFFN | MoeFFN;

interface Block {
  name: string;
  ln1: Norm;
  self: MultiHeadAttention;
  lnCross: Norm | null;
  cross: MultiHeadAttention | null;
  ln2: Norm;
  ffn: FFN;
}

const NEG = -1e9;

function sinusoid(maxLength: number, d: number): Float32Array {
  const out = new Float32Array(maxLength * d);
  const half = Math.floor(d / 2);
  for (let p = 0; p < maxLength; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p / 10000 ** (i / Math.max(1, half - 1));
      out[p * d + i] = Math.sin(angle);
      out[p * d + half + i] = Math.cos(angle);
    }
  }
  return out;
}

export class Transformer {
  readonly config: ModelConfig;
  readonly store: ParamStore;
  private readonly embed: Variable;
  private readonly positions: Variable | null;
  private readonly sinusoid: Float32Array | null;
  readonly encoder: Block[];
  readonly decoder: Block[];
  private readonly encNorm: Norm | null;
  private readonly decNorm: Norm;
  /** The pager holding the experts' parameters (TransformerInit.pager), or null. */
  readonly pager: ExpertPager | null;

  constructor(config: ModelConfigInput | ModelConfig, init: TransformerInit) {
    this.config = parseConfig(ModelConfig, config, { prefix: "model" });
    const c = this.config;
    if (c.dModel % c.heads !== 0) {
      throw new ModelError(
        "INVALID_CONFIG",
        `model.heads: dModel ${c.dModel} is not divisible by heads ${c.heads}`,
      );
    }
    this.store = new ParamStore(init.namespace ?? "model", init.trainable ?? true);
    this.pager = init.pager ?? null;
    if (this.pager && (init.exchange || init.slicing)) {
      throw new ModelError(
        "INVALID_CONFIG",
        "TransformerInit.pager cannot be combined with exchange or slicing: paged experts train in one process",
      );
    }
    let seed = init.seed * 1000;
    const next = () => seed++ * 7;
    this.embed = this.store.add(
      "embed.tokens",
      randomNormal([c.vocabSize, c.dModel], 0, c.dModel ** -0.5, "float32", next()),
    );
    this.positions =
      c.positions === "learned"
        ? this.store.add("embed.positions", randomNormal([c.maxLength, c.dModel], 0, 0.02, "float32", next()))
        : null;
    this.sinusoid = c.positions === "sinusoidal" ? sinusoid(c.maxLength, c.dModel) : null;
    const build = (stack: "encoder" | "decoder", n: number, placement: MoePlacement | undefined): Block[] => {
      const moeAt = moeLayerIndices(placement, n);
      for (const k of Object.keys(c.ffnWidths?.[stack] ?? {})) {
        if (Number(k) >= n || moeAt.includes(Number(k))) {
          throw new ModelError(
            "INVALID_CONFIG",
            `model.ffnWidths.${stack}.${k}: ${Number(k) >= n ? `the stack has ${n} layers` : "that layer is an MoE layer"}`,
          );
        }
      }
      const experts = placement?.numExperts;
      if (Array.isArray(experts) && experts.length !== moeAt.length) {
        throw new ModelError(
          "INVALID_CONFIG",
          `model.moe.${stack}.numExperts lists ${experts.length} counts but the stack has ${moeAt.length} MoE layers (${moeAt.join(", ")})`,
        );
      }
      return Array.from({ length: n }, (_, i) => {
        const name = `${stack}.layers.${i}`;
        const block: Block = {
          name,
          ln1: norm(this.store, `${name}.ln1`, c.dModel),
          self: new MultiHeadAttention(this.store, `${name}.self`, c.dModel, c.heads, false, next()),
          lnCross: stack === "decoder" ? norm(this.store, `${name}.lnCross`, c.dModel) : null,
          cross:
            stack === "decoder"
              ? new MultiHeadAttention(this.store, `${name}.cross`, c.dModel, c.heads, true, next())
              : null,
          ln2: norm(this.store, `${name}.ln2`, c.dModel),
          ffn: { kind: "dense", w1: undefined as never, w2: undefined as never },
        };
        const m = moeAt.indexOf(i);
        if (placement && m >= 0) {
          const numExperts = Array.isArray(experts) ? (experts[m] as number) : (experts as number);
          const exchange =
            typeof init.exchange === "function"
              ? init.exchange({ name: `${stack}.layers.${i}`, numExperts })
              : init.exchange;
          const layer = new MoeLayer(
            {
              numExperts,
              dFF: placement.dFF ?? c.dFF,
              activation: c.activation,
              expertBias: placement.expertBias,
              residual: placement.residual,
              router: placement.router,
            },
            {
              dModel: c.dModel,
              seed: next(),
              name: `${this.store.namespace}.${name}.ffn`,
              trainable: init.trainable ?? true,
              ...(exchange ? { exchange } : {}),
              ...(init.slicing ? { slicing: init.slicing } : {}),
              ...(init.pager ? { paging: { pager: init.pager, name: `${name}.ffn.experts` } } : {}),
            },
          );
          this.store.adopt(`${name}.ffn`, layer.variables());
          block.ffn = { kind: "moe", layer, taskKey: placement.taskKey };
        } else {
          const width = c.ffnWidths?.[stack]?.[String(i)] ?? c.dFF;
          block.ffn = {
            kind: "dense",
            w1: linear(this.store, `${name}.ffn.w1`, c.dModel, width, next()),
            w2: linear(this.store, `${name}.ffn.w2`, width, c.dModel, next()),
          };
        }
        return block;
      });
    };
    this.encoder = build("encoder", c.encoderLayers, c.moe?.encoder);
    this.decoder = build("decoder", c.decoderLayers, c.moe?.decoder);
    this.encNorm = c.encoderLayers > 0 ? norm(this.store, "encoder.ln", c.dModel) : null;
    this.decNorm = norm(this.store, "decoder.ln", c.dModel);
  }

  /** Every parameter by checkpoint name (namespace stripped). */
  variables(): Map<string, Variable> {
    return this.store.vars;
  }

  /** Expert parameters (sharded over expert-parallel ranks) and everything else. */
  parameterGroups(): { expert: Map<string, Variable>; dense: Map<string, Variable> } {
    const expertVars = new Set<Variable>();
    for (const b of [...this.encoder, ...this.decoder]) {
      if (b.ffn.kind === "moe") for (const v of b.ffn.layer.parameterGroups().expert) expertVars.add(v);
    }
    const expert = new Map<string, Variable>();
    const dense = new Map<string, Variable>();
    for (const [k, v] of this.store.vars) (expertVars.has(v) ? expert : dense).set(k, v);
    return { expert, dense };
  }

  /** The MoE layers by block name. */
  moeLayers(): { name: string; layer: MoeLayer; taskKey: TaskKey }[] {
    return [...this.encoder, ...this.decoder].flatMap((b) =>
      b.ffn.kind === "moe" ? [{ name: b.name, layer: b.ffn.layer, taskKey: b.ffn.taskKey }] : [],
    );
  }

  /**
   * Expert parameters with their place in the global expert numbering:
   * variable key -> first global expert id held here, and the layer's total
   * expert count. Checkpoints store experts by global id, so a run can change
   * its expert-parallel layout.
   */
  expertLayout(): Map<string, ExpertLayout> {
    const out = new Map<string, ExpertLayout>();
    for (const { name, layer } of this.moeLayers()) {
      const axes = layer.experts.slicedAxes();
      const slicing = layer.experts.slicing;
      for (const k of Object.keys(layer.experts.variables())) {
        const axis = axes[k] ?? null;
        out.set(`${name}.ffn.experts.${k}`, {
          firstExpert: layer.exchange.firstExpert,
          localExperts: layer.experts.numExperts,
          numExperts: layer.config.numExperts,
          ...(slicing && slicing.size > 1 && axis !== null
            ? { slice: { axis, rank: slicing.rank, size: slicing.size } }
            : {}),
        });
      }
    }
    return out;
  }

  /** Parameters of the model, paged experts included. */
  numParameters(): number {
    let n = 0;
    for (const v of this.store.vars.values()) n += v.size;
    if (this.pager) for (const { layer } of this.moeLayers()) n += layer.experts.numParameters();
    return n;
  }

  // -------------------------------------------------------------------------

  /** Token embedding * sqrt(M) + position embedding for positions [offset, offset + L). */
  private embedTokens(ids: Int32Array, B: number, L: number, offset: number): Tensor2D {
    const c = this.config;
    if (offset + L > c.maxLength) {
      throw new ModelError(
        "SHAPE_MISMATCH",
        `sequence length ${offset + L} exceeds model.maxLength ${c.maxLength}; raise maxLength or filter long sentences`,
      );
    }
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i] as number;
      if (!(t >= 0 && t < c.vocabSize)) {
        throw new ModelError(
          "INVALID_ARGUMENT",
          `token id ${t} at position ${i} is outside the vocabulary [0, ${c.vocabSize})`,
        );
      }
    }
    const tok = mul(gather(this.embed, tensor1d(ids, "int32")), Math.sqrt(c.dModel)) as Tensor2D;
    const pos = this.positions
      ? (slice(this.positions, [offset, 0], [L, c.dModel]) as Tensor2D)
      : tensor2d((this.sinusoid as Float32Array).subarray(offset * c.dModel, (offset + L) * c.dModel), [
          L,
          c.dModel,
        ]);
    return reshape(add(reshape(tok, [B, L, c.dModel]), pos), [B * L, c.dModel]) as Tensor2D;
  }

  private padMaskAdd(mask: Uint8Array, B: number, S: number): Tensor4D {
    return tensor4d(
      Float32Array.from(mask, (m) => (m ? 0 : NEG)),
      [B, 1, 1, S],
    );
  }

  private causalMask(T: number): Tensor4D {
    const m = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = NEG;
    return tensor4d(m, [1, 1, T, T]);
  }

  private ffn(
    b: Block,
    h: Tensor2D,
    L: number,
    B: number,
    tokenMask: Uint8Array,
    taskIds: Partial<Record<TaskKey, Int32Array>>,
    ctx: ForwardContext,
    reports: MoeReport[],
    losses: { aux: Tensor[]; z: Tensor[] },
  ): Tensor2D {
    return timed(ctx, b.ffn.kind === "dense" ? "ffn" : "moe", () =>
      this.ffnUntimed(b, h, L, B, tokenMask, taskIds, ctx, reports, losses),
    );
  }

  private ffnUntimed(
    b: Block,
    h: Tensor2D,
    L: number,
    B: number,
    tokenMask: Uint8Array,
    taskIds: Partial<Record<TaskKey, Int32Array>>,
    ctx: ForwardContext,
    reports: MoeReport[],
    losses: { aux: Tensor[]; z: Tensor[] },
  ): Tensor2D {
    const c = this.config;
    if (b.ffn.kind === "dense") {
      const hidden = applyLinear(b.ffn.w1, h);
      return applyLinear(b.ffn.w2, (c.activation === "gelu" ? gelu(hidden) : relu(hidden)) as Tensor2D);
    }
    const perSentence = taskIds[b.ffn.taskKey];
    const routeCtx: RouteContext = { training: ctx.training, rng: ctx.rng, padMask: tokenMask };
    if (ctx.step !== undefined) routeCtx.step = ctx.step;
    if (b.ffn.layer.router.taskLevel) {
      if (!perSentence || perSentence.length !== B) {
        throw new ModelError(
          "INVALID_ARGUMENT",
          `${b.name}: its task-level router reads '${b.ffn.taskKey}' task ids, one per sentence (${B}); the batch has ${perSentence ? perSentence.length : "none"}`,
        );
      }
      const perToken = new Int32Array(B * L);
      for (let s = 0; s < B; s++) perToken.fill(perSentence[s] as number, s * L, (s + 1) * L);
      routeCtx.taskIds = perToken;
    } else if (perSentence && perSentence.length === B) {
      // Token routers ignore task ids, but usage-per-task metrics use them.
      const perToken = new Int32Array(B * L);
      for (let s = 0; s < B; s++) perToken.fill(perSentence[s] as number, s * L, (s + 1) * L);
      routeCtx.taskIds = perToken;
      let max = 0;
      for (const v of perSentence) max = Math.max(max, v);
      routeCtx.numTasks = max + 1;
    }
    const { y, routing } = b.ffn.layer.forward(h, routeCtx);
    reports.push({ layer: b.name, metrics: routing.metrics });
    losses.aux.push(routing.auxLoss);
    losses.z.push(routing.zLoss);
    return y;
  }

  private encodeRows(
    batch: Pick<ModelBatch, "batch" | "srcLen" | "src" | "srcMask" | "taskIds">,
    ctx: ForwardContext,
    reports: MoeReport[],
    losses: { aux: Tensor[]; z: Tensor[] },
  ) {
    const c = this.config;
    const { batch: B, srcLen: S } = batch;
    const mask = this.padMaskAdd(batch.srcMask, B, S);
    let x = timed(ctx, "embed", () =>
      drop(this.embedTokens(batch.src, B, S, 0), c.dropout, ctx.training, ctx.rng),
    );
    for (const b of this.encoder) {
      const a = timed(ctx, "attention", () =>
        b.self.apply(applyNorm(b.ln1, x, c.layerNormEps), B, S, mask, {
          training: ctx.training,
          rng: ctx.rng,
          dropout: c.attentionDropout,
        }),
      );
      x = add(x, drop(a.y, c.dropout, ctx.training, ctx.rng)) as Tensor2D;
      const f = this.ffn(
        b,
        applyNorm(b.ln2, x, c.layerNormEps),
        S,
        B,
        batch.srcMask,
        batch.taskIds,
        ctx,
        reports,
        losses,
      );
      x = add(x, drop(f, c.dropout, ctx.training, ctx.rng)) as Tensor2D;
    }
    const out = this.encNorm ? applyNorm(this.encNorm, x, c.layerNormEps) : x;
    return { out, mask };
  }

  /**
   * Teacher-forced forward pass: logits for every target position.
   * Returns tensors the caller owns (use inside tf.tidy / tf.grads).
   */
  forward(batch: ModelBatch, ctx: ForwardContext): ForwardOutput {
    const c = this.config;
    const { batch: B, tgtLen: T } = batch;
    this.checkBatch(batch);
    const reports: MoeReport[] = [];
    const losses = { aux: [] as Tensor[], z: [] as Tensor[] };
    const enc = this.encodeRows(batch, ctx, reports, losses);
    const selfMask = add(this.causalMask(T), this.padMaskAdd(batch.tgtMask, B, T)) as Tensor4D;
    let x = timed(ctx, "embed", () =>
      drop(this.embedTokens(batch.tgtIn, B, T, 0), c.dropout, ctx.training, ctx.rng),
    );
    for (const b of this.decoder) {
      const opts = { training: ctx.training, rng: ctx.rng, dropout: c.attentionDropout };
      const a = timed(ctx, "attention", () =>
        b.self.apply(applyNorm(b.ln1, x, c.layerNormEps), B, T, selfMask, opts),
      );
      x = add(x, drop(a.y, c.dropout, ctx.training, ctx.rng)) as Tensor2D;
      const cross = b.cross as MultiHeadAttention;
      const xa = timed(ctx, "attention", () => {
        const kv = cross.projectKV(enc.out, B, batch.srcLen);
        return cross.apply(applyNorm(b.lnCross as Norm, x, c.layerNormEps), B, T, enc.mask, {
          ...opts,
          kv,
        });
      });
      x = add(x, drop(xa.y, c.dropout, ctx.training, ctx.rng)) as Tensor2D;
      const f = this.ffn(
        b,
        applyNorm(b.ln2, x, c.layerNormEps),
        T,
        B,
        batch.tgtMask,
        batch.taskIds,
        ctx,
        reports,
        losses,
      );
      x = add(x, drop(f, c.dropout, ctx.training, ctx.rng)) as Tensor2D;
    }
    const logits = timed(
      ctx,
      "output",
      () => matMul(applyNorm(this.decNorm, x, c.layerNormEps), this.embed, false, true) as Tensor2D,
    );
    const sum = (ts: Tensor[]) =>
      ts.length === 0 ? scalar(0) : ts.length === 1 ? (ts[0] as Scalar) : (addN(ts) as Scalar);
    return { logits, auxLoss: sum(losses.aux), zLoss: sum(losses.z), moe: reports };
  }

  private checkBatch(b: ModelBatch): void {
    const want: [string, number, number][] = [
      ["src", b.src.length, b.batch * b.srcLen],
      ["srcMask", b.srcMask.length, b.batch * b.srcLen],
      ["tgtIn", b.tgtIn.length, b.batch * b.tgtLen],
      ["tgtMask", b.tgtMask.length, b.batch * b.tgtLen],
    ];
    for (const [name, got, expected] of want) {
      if (got !== expected) {
        throw new ModelError(
          "SHAPE_MISMATCH",
          `batch.${name} has ${got} entries, expected batch * length = ${expected}`,
        );
      }
    }
  }

  // --- incremental decoding --------------------------------------------------

  /** Encodes sources once for decoding (eval mode: no dropout, eval capacity). */
  encode(
    batch: Pick<ModelBatch, "batch" | "srcLen" | "src" | "srcMask" | "taskIds">,
    rng: Rng,
  ): EncoderMemory {
    const ctx = { training: false, rng };
    const kept = tidy(() => {
      const { out, mask } = this.encodeRows(batch, ctx, [], { aux: [], z: [] });
      const crossKV = this.decoder.map((b) =>
        (b.cross as MultiHeadAttention).projectRows(out, batch.batch, batch.srcLen),
      );
      const outputWeight = transpose(this.embed) as Tensor2D;
      return { out, mask, crossKV, outputWeight } as unknown as TensorContainer;
    }) as unknown as Pick<EncoderMemory, "out" | "mask" | "crossKV" | "outputWeight">;
    return { B: batch.batch, S: batch.srcLen, ...kept, taskIds: batch.taskIds };
  }

  /** State before the first step; `capacity`: the most positions decoded (default model.maxLength). */
  initialState(capacity = this.config.maxLength): DecoderState {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > this.config.maxLength) {
      throw new ModelError(
        "INVALID_ARGUMENT",
        `initialState: capacity must be an integer in [1, ${this.config.maxLength}] (model.maxLength), got ${capacity}`,
      );
    }
    return { position: 0, capacity, self: this.decoder.map(() => null) };
  }

  /**
   * One decoder step for B sentences: tokens <int32>[B] at the current
   * position -> logits <float32>[B, V] and the advanced state (caches grow by
   * one position). Old cache tensors are the caller's to dispose (tidy).
   */
  decodeStep(
    mem: EncoderMemory,
    state: DecoderState,
    tokens: Int32Array,
    rng: Rng,
  ): { logits: Tensor2D; state: DecoderState } {
    const c = this.config;
    const B = mem.B;
    if (tokens.length !== B)
      throw new ModelError("SHAPE_MISMATCH", `decodeStep: ${tokens.length} tokens for ${B} sentences`);
    const ctx = { training: false, rng };
    const mask = new Uint8Array(B).fill(1);
    if (state.position >= state.capacity) {
      throw new ModelError(
        "INVALID_ARGUMENT",
        `decodeStep: position ${state.position} is past the state's capacity ${state.capacity} (initialState(capacity))`,
      );
    }
    const kept = tidy(() => {
      let x = this.embedTokens(tokens, B, 1, state.position);
      const self: RowKV[] = [];
      this.decoder.forEach((b, i) => {
        const a = b.self.step(applyNorm(b.ln1, x, c.layerNormEps), B, 1, {
          cache: state.self[i] ?? null,
          pos: state.position,
          capacity: state.capacity,
        });
        self.push(a.kv);
        x = add(x, a.y) as Tensor2D;
        const xa = (b.cross as MultiHeadAttention).step(
          applyNorm(b.lnCross as Norm, x, c.layerNormEps),
          B,
          1,
          {
            kv: mem.crossKV[i] as RowKV,
            mask: mem.mask,
          },
        );
        x = add(x, xa.y) as Tensor2D;
        const f = this.ffn(b, applyNorm(b.ln2, x, c.layerNormEps), 1, B, mask, mem.taskIds, ctx, [], {
          aux: [],
          z: [],
        });
        x = add(x, f) as Tensor2D;
      });
      const logits = matMul(applyNorm(this.decNorm, x, c.layerNormEps), mem.outputWeight) as Tensor2D;
      return { logits, self } as unknown as TensorContainer;
    }) as unknown as { logits: Tensor2D; self: RowKV[] };
    return {
      logits: kept.logits,
      state: { position: state.position + 1, capacity: state.capacity, self: kept.self },
    };
  }

  /**
   * Keeps rows `index` (e.g. surviving beams) of the memory and state. Returns
   * new tensors; the inputs stay the caller's to dispose.
   */
  reorder(
    mem: EncoderMemory,
    state: DecoderState,
    index: Int32Array,
  ): { mem: EncoderMemory; state: DecoderState } {
    const M = this.config.dModel;
    const idx = tensor1d(index, "int32");
    const rows = <T extends Tensor>(t: T) => gather(t, idx) as T;
    const taskIds: Partial<Record<TaskKey, Int32Array>> = {};
    for (const [k, v] of Object.entries(mem.taskIds))
      taskIds[k as TaskKey] = Int32Array.from(index, (i) => v[i] as number);
    const out = tidy(
      () => reshape(gather(reshape(mem.out, [mem.B, mem.S, M]), idx), [index.length * mem.S, M]) as Tensor2D,
    );
    const result = {
      mem: {
        B: index.length,
        S: mem.S,
        out,
        mask: rows(mem.mask),
        crossKV: mem.crossKV.map((kv) => ({ k: rows(kv.k), v: rows(kv.v) })),
        outputWeight: clone(mem.outputWeight),
        taskIds,
      },
      state: {
        position: state.position,
        capacity: state.capacity,
        self: state.self.map((kv) => (kv ? { k: rows(kv.k), v: rows(kv.v) } : null)),
      },
    };
    idx.dispose();
    return result;
  }

  dispose(): void {
    for (const b of [...this.encoder, ...this.decoder]) if (b.ffn.kind === "moe") b.ffn.layer.dispose();
    const moeVars = new Set<Variable>();
    for (const b of [...this.encoder, ...this.decoder]) {
      if (b.ffn.kind === "moe") for (const v of Object.values(b.ffn.layer.variables())) moeVars.add(v);
    }
    for (const v of this.store.vars.values()) if (!moeVars.has(v)) v.dispose();
  }
}
