"""One message model, one converter: every reader turns its shape of message into `model.Message`s here.

The package, by what each module owns:
  roles          the one role table (`normalise_role`): `customer` is a user through every reader
  values         the one `text_of`, `parse_arguments`, JSON-in-string helpers, `is_map`
  shapes         the registry of message shapes (`SHAPES`: Responses items, AutoGen, pydantic-ai) and
                 the shapes of parts (tool calls and results of OpenAI, Anthropic, Gemini/ADK, Bedrock,
                 Vercel AI SDK, smolagents)
  convert        `convert_message` / `convert_messages`: a source message list → messages
  fast           the fast lane for plain OpenAI chat messages (an allowlist of keys) and fast
                 constructors of the frozen models
  conversations  where a plain record keeps its conversation (`conversation_of`)
  telemetry      what span fields carry → messages (`to_messages`), for the span readers

Must never: read files (the readers in `traces.formats` do), judge outcomes (`analysis` does), or
grow a second converter, role table or text function beside these.
"""
