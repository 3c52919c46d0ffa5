//! The MCP server's decisions (streamable HTTP, JSON answers, protocol revisions 2025-03-26 to 2025-11-25):
//! which requests the transport takes (`transport`), what a JSON-RPC message asks (`message`), and the tools,
//! whose schemas are the OpenAPI document's own (`tools`). The Worker's `/mcp` route runs what these decide with
//! the batch API's own rpc calls and answers.

mod message;
mod tools;
mod transport;

pub use message::{dispatch, error_response, result_response, Dispatch, Incoming, RpcError};
pub use tools::{tool_error, tool_result, tools_list, ToolCall, TOOL_NAMES};
pub use transport::{check_headers, negotiate, origin_of, LATEST_VERSION, SUPPORTED_VERSIONS};
