// Op codes shared with native/src/eltwise.h and native/src/shape_ops.h.
export const BinOp = {
  Add: 0,
  Sub: 1,
  Mul: 2,
  Div: 3,
  Max: 4,
  Min: 5,
  SquaredDifference: 6,
  Prelu: 7,
} as const;

export const UnOp = {
  Relu: 0,
  Relu6: 1,
  Elu: 2,
  LeakyRelu: 3,
  Sigmoid: 4,
  Tanh: 5,
  Exp: 6,
  Log: 7,
  Sqrt: 8,
  Rsqrt: 9,
  Neg: 10,
  Square: 11,
  Abs: 12,
  Reciprocal: 13,
  Step: 14,
  Gelu: 15,
  Erf: 16,
} as const;

export const RedOp = { Sum: 0, Mean: 1, Max: 2, Min: 3, Prod: 4 } as const;
