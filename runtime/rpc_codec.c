/* rpc_codec: protobuf-c <-> grpc_byte_buffer. */
#include "runtime/rpc_codec.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

grpc_byte_buffer *rpc_encode(const ProtobufCMessage *msg) {
    size_t size = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(size);
    grpc_byte_buffer *buf;

    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    buf = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return buf;
}

ProtobufCMessage *rpc_decode(grpc_byte_buffer *buf, const ProtobufCMessageDescriptor *desc) {
    grpc_byte_buffer_reader reader;
    ProtobufCMessage *msg;

    if (!grpc_byte_buffer_reader_init(&reader, buf))
        return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return msg;
}
