import { logSoftmax } from "@polymoe/kernels";
import {
  add,
  gather,
  mean,
  mul,
  neg,
  reshape,
  type Scalar,
  sum,
  type Tensor1D,
  type Tensor2D,
  tensor1d,
  tidy,
} from "@tensorflow/tfjs-core";

import { TrainError } from "./errors.js";

export interface TokenLoss {
  /** Label-smoothed cross-entropy per target token (the training loss). */
  loss: Scalar;
  /** Plain negative log-likelihood per target token (for perplexity and dev loss). */
  nll: Scalar;
  /** Target tokens counted (non-padding). */
  tokens: number;
}

/**
 * Label-smoothed cross-entropy, averaged over non-padding target tokens:
 * (1 - eps) * -log p(target) + eps * mean over the vocabulary of -log p(v).
 *
 * logits: <float32>[N, V]; targets: <int32>[N]; mask: [N] 1 = real token.
 */
export function labelSmoothedCrossEntropy(
  logits: Tensor2D,
  targets: Int32Array,
  mask: ArrayLike<number>,
  epsilon: number,
): TokenLoss {
  const [N, V] = logits.shape;
  if (targets.length !== N || mask.length !== N) {
    throw new TrainError(
      "INVALID_ARGUMENT",
      `labelSmoothedCrossEntropy: ${N} logit rows but ${targets.length} targets and ${mask.length} mask entries`,
    );
  }
  if (!(epsilon >= 0 && epsilon < 1)) {
    throw new TrainError("INVALID_ARGUMENT", `label smoothing must be in [0, 1), got ${epsilon}`);
  }
  const flat = new Int32Array(N);
  const w = new Float32Array(N);
  let tokens = 0;
  for (let i = 0; i < N; i++) {
    const t = targets[i] as number;
    if (mask[i]) {
      if (!(t >= 0 && t < V)) {
        throw new TrainError(
          "INVALID_ARGUMENT",
          `target ${t} at row ${i} is outside the vocabulary [0, ${V})`,
        );
      }
      w[i] = 1;
      tokens++;
    }
    flat[i] = i * V + (t >= 0 && t < V ? t : 0);
  }
  const denom = Math.max(1, tokens);
  return tidy(() => {
    const logp = logSoftmax(logits);
    const picked = gather(reshape(logp, [N * V]), tensor1d(flat, "int32")) as Tensor1D;
    const weights = tensor1d(w);
    const nllTok = neg(picked);
    const nll = mul(sum(mul(nllTok, weights)), 1 / denom) as Scalar;
    if (epsilon === 0) return { loss: nll, nll, tokens };
    const smoothTok = neg(mean(logp, 1));
    const perTok = add(mul(nllTok, 1 - epsilon), mul(smoothTok, epsilon));
    const loss = mul(sum(mul(perTok, weights)), 1 / denom) as Scalar;
    return { loss, nll, tokens };
  });
}
