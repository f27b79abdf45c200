// grpc-interop-descriptors writes a FileDescriptorSet as binary protobuf, to the
// file named by the first argument or to stdout: grpc.testing's test.proto (the
// TestService the interop client calls, and UnimplementedService), and the ORCA
// load report and OpenRcaService the orca_per_rpc and orca_oob cases read, each
// with every file it imports, dependencies first. grpc-go ships the interop
// protos only as generated Go code; this is how the TypeScript interop server gets
// the schema at runtime without a copy of the .proto files in this repository.
package main

import (
	"fmt"
	"os"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	root := testgrpc.File_grpc_testing_test_proto
	if root.Services().ByName("TestService") == nil {
		fail(fmt.Errorf("%s has no TestService", root.Path()))
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(f protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	add(root)
	add(v3orcapb.File_xds_data_orca_v3_orca_load_report_proto)
	add(v3orcaservicepb.File_xds_service_orca_v3_orca_proto)
	out, err := proto.Marshal(set)
	if err != nil {
		fail(err)
	}
	if len(os.Args) > 1 {
		err = os.WriteFile(os.Args[1], out, 0o644)
	} else {
		_, err = os.Stdout.Write(out)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "grpc-interop-descriptors:", err)
	os.Exit(1)
}
