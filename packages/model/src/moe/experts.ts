import { gelu, groupedMatMul } from "@polymoe/kernels";
import {
  add,
  matMul,
  randomNormal,
  relu,
  reshape,
  type Tensor2D,
  type Tensor3D,
  type Variable,
  variable,
  zeros,
} from "@tensorflow/tfjs-core";

/**
 * E two-layer FFN experts evaluated together, either as one batched matmul per
 * layer over a capacity buffer [E, C, M] (`apply`), or as grouped matmuls over
 * the rows each expert was actually routed (`applyGrouped`).
 * w1 [E, M, F], b1 [E, F], w2 [E, F, M], b2 [E, M].
 */
export class BatchedExperts {
  readonly w1: Variable;
  readonly w2: Variable;
  readonly b1: Variable | null;
  readonly b2: Variable | null;

  constructor(
    readonly numExperts: number,
    readonly dModel: number,
    readonly dFF: number,
    readonly activation: "relu" | "gelu",
    bias: boolean,
    seed: number,
    name: string,
    trainable = true,
  ) {
    const [E, M, F] = [numExperts, dModel, dFF];
    this.w1 = variable(
      randomNormal([E, M, F], 0, 1 / Math.sqrt(M), "float32", seed),
      trainable,
      `${name}.w1`,
    );
    this.w2 = variable(
      randomNormal([E, F, M], 0, 1 / Math.sqrt(F), "float32", seed + 1),
      trainable,
      `${name}.w2`,
    );
    this.b1 = bias ? variable(zeros([E, F]), trainable, `${name}.b1`) : null;
    this.b2 = bias ? variable(zeros([E, M]), trainable, `${name}.b2`) : null;
  }

  /** buf: <float32>[E, C, M] -> <float32>[E, C, M]. */
  apply(buf: Tensor3D): Tensor3D {
    const [E, , M] = buf.shape;
    const F = this.dFF;
    let h = matMul(buf, this.w1) as Tensor3D;
    if (this.b1) h = add(h, reshape(this.b1, [E, 1, F])) as Tensor3D;
    h = (this.activation === "gelu" ? gelu(h) : relu(h)) as Tensor3D;
    let out = matMul(h, this.w2) as Tensor3D;
    if (this.b2) out = add(out, reshape(this.b2, [E, 1, M])) as Tensor3D;
    return out;
  }

  /**
   * Grouped form: rows: <float32>[R, M] expert-buffer rows; segments:
   * (start, rows, expert) triples saying which expert processes which rows
   * (see groupedMatMul). Each expert runs only on its own rows, so cost follows
   * the routed tokens, not the capacity. Rows no segment covers come out zero
   * (the activation maps 0 to 0). Returns <float32>[R, M].
   */
  applyGrouped(rows: Tensor2D, segments: Int32Array): Tensor2D {
    const h = groupedMatMul(
      rows,
      this.w1 as Tensor3D,
      segments,
      this.b1 ? { bias: this.b1 as Tensor2D } : {},
    );
    const a = (this.activation === "gelu" ? gelu(h) : relu(h)) as Tensor2D;
    return groupedMatMul(a, this.w2 as Tensor3D, segments, this.b2 ? { bias: this.b2 as Tensor2D } : {});
  }

  variables(): Record<string, Variable> {
    const v: Record<string, Variable> = { w1: this.w1, w2: this.w2 };
    if (this.b1) v.b1 = this.b1;
    if (this.b2) v.b2 = this.b2;
    return v;
  }

  dispose(): void {
    for (const v of Object.values(this.variables())) v.dispose();
  }
}
