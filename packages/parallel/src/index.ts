// @polymoe/parallel: multi-process training over MPI. See README.md for the
// process-group layout and how a trainer calls these building blocks.
export {
  type BackendName,
  COLLECTIVES,
  type CollectiveArray,
  type CollectiveCount,
  type CollectiveName,
  type CollectiveStats,
  type Communicator,
  type CommunicatorOptions,
  type ReduceOp,
} from "./communicator.js";
export {
  BACKEND_CHOICES,
  createWorld,
  launchedByMpirun,
  type ParallelConfig,
  type ParallelConfigInput,
  parallelConfigSchema,
  parseParallelConfig,
} from "./config.js";
export { ParallelError, type ParallelErrorCode } from "./errors.js";
export {
  type DroplessPlan,
  type ExpertBufferShape,
  exchangeFromExperts,
  exchangeToExperts,
  exchangeTokensFromExperts,
  exchangeTokensToExperts,
} from "./expert_exchange.js";
export {
  allReduceBucketed,
  type Bucket,
  type BucketedAllReduceOptions,
  type GradientGroups,
  gradientScale,
  planBuckets,
  reduceGradients,
} from "./gradients.js";
export {
  computeLayout,
  createProcessGroups,
  describeLayout,
  GROUP_KINDS,
  type GroupKind,
  type LayoutInput,
  type ParallelLayout,
  type ProcessGroups,
  type RankCoords,
} from "./groups.js";
export {
  type LaunchIo,
  type LaunchOptions,
  type LaunchPlan,
  launch,
  parseHostfile,
  parseRankFailure,
  planLaunch,
  type RankFailure,
} from "./launch.js";
export { createLocalCommunicator } from "./local.js";
export {
  CommClock,
  CommExpertExchange,
  CommExpertSlicing,
  type CommTime,
  type ModelCommStats,
  type ModelParallelHooks,
  modelParallelHooks,
} from "./model_parallel.js";
export {
  commBuffer,
  finalizeMpi,
  type MpiInfo,
  mpiAddonPath,
  mpiAvailability,
  mpiLastCollectiveSeconds,
  mpiWorld,
  mpiWtime,
} from "./mpi.js";
export { initRankProcess, isLaunchedRank, type RankProcess } from "./rank_process.js";
export { type RankFunction, runSimulated, type SimulatedRunOptions } from "./simulated.js";
export { flatOffsets, partitionFlat, ZeroGroup, type ZeroGroupOptions, type ZeroPartition } from "./zero.js";
