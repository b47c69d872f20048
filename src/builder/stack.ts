// The builder reads images through the in-root resolver's layered view (src/fsroot).
export { LayerStack, type Lookup } from '../fsroot/index.ts';
