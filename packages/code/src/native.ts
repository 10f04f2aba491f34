/** The native addon (napi's generated loader, next to package.json; reached from dist/ through
 * the dist/native.cjs that build.mjs writes). */
import addon from '../native.cjs';

export type { NativeCodeTools, NativeCodeToolInfo, NativeCodeToolsOptions, NativePipeline } from '../native.cjs';
export { addon };
