import type { Tensor2D, Tensor3D, Variable } from "@tensorflow/tfjs-core";

/**
 * Paged experts (ZeRO-Infinity for MoE): a layer built with a pager holds no
 * expert variables. Its experts' parameters live in the pager (host memory
 * under a budget, then disk, e.g. @polymoe/offload's PagedExperts); each
 * forward asks for the experts the batch actually routed tokens to, as
 * compact tensors, and hands their gradients back in the backward pass.
 *
 * Axis legend: A active experts of the layer (ascending global ids),
 * M model width, F expert hidden width.
 */
export interface ExpertPager {
  /**
   * A trainable scalar variable that the trainer must list among the
   * variables it differentiates (tfjs only follows the tape from listed
   * variables); its value is never used and its gradient is zero. Through it
   * the backward pass reaches the paged weights' gradient sinks.
   */
  readonly anchor: Variable;
  /** Called once per MoE layer at construction, before any fetch. */
  register(layer: PagedLayerSpec): void;
  /**
   * The parameters of `experts` (global ids, strictly ascending) of `layer`,
   * as tensors owned by the pager (valid until the pager's step ends).
   */
  fetch(layer: string, experts: Int32Array): PagedWeights;
  /**
   * Receives `grad`, the gradient of `fetched` (a tensor fetch() returned),
   * from the backward pass; the pager copies what it keeps (tfjs disposes
   * `grad` after the call).
   */
  accumulate(fetched: Tensor2D | Tensor3D, grad: Tensor2D | Tensor3D): void;
}

/** The tensors of A experts: w1 <float32>[A, M, F], b1 [A, F], w2 [A, F, M], b2 [A, M]. */
export interface PagedWeights {
  w1: Tensor3D;
  w2: Tensor3D;
  b1: Tensor2D | null;
  b2: Tensor2D | null;
}

/** What a pager needs to know of one MoE layer's experts. */
export interface PagedLayerSpec {
  /** Prefix of the layer's expert parameter names without the model namespace, e.g. "encoder.layers.1.ffn.experts". */
  name: string;
  numExperts: number;
  dModel: number;
  dFF: number;
  bias: boolean;
  /** The initial w1 <float32>[M, F] and w2 <float32>[F, M] of global expert e (biases start at zero). */
  init(e: number): { w1: Float32Array; w2: Float32Array };
}
