/* rpc_codec: protobuf-c messages to and from gRPC byte buffers. */
#ifndef BASALT_RUNTIME_RPC_CODEC_H
#define BASALT_RUNTIME_RPC_CODEC_H

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

/* Messages larger than this are refused by gRPC with RESOURCE_EXHAUSTED, on
 * servers and clients alike. It sits well above the largest valid request, so
 * a request just over a documented limit still reaches its handler and gets a
 * clear INVALID_ARGUMENT. */
#define RPC_MESSAGE_BYTES_MAX (8 * 1024 * 1024)

/* Packs `msg` into a new byte buffer the caller destroys. NULL when out of
 * memory. */
grpc_byte_buffer *rpc_encode(const ProtobufCMessage *msg);

/* Unpacks a message of type `desc` from `buf` (decompressing if needed).
 * Returns a message to free with protobuf_c_message_free_unpacked, or NULL
 * when the bytes are not a valid message of that type. */
ProtobufCMessage *rpc_decode(grpc_byte_buffer *buf, const ProtobufCMessageDescriptor *desc);

#endif
